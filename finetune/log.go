package finetune

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// StepStats describes one optimizer step.
type StepStats struct {
	Step      int     // 1-based
	Steps     int     // steps in the whole run
	Epoch     int     // 1-based
	LR        float64 // learning rate used
	Loss      float64 // mean cross-entropy per scored token, before the update (nats)
	Accuracy  float64 // share of scored tokens predicted right (arg-max)
	Scored    int     // scored tokens
	Tokens    int     // all tokens processed
	GradNorm  float64 // L2 norm of the gradient before clipping
	TokensPS  float64 // training tokens per second, over the run so far
	Elapsed   float64 // training seconds so far
	EvalLoss  float64 // held-out loss after this step, NaN when not evaluated
	EvalScore int     // held-out scored tokens, 0 when not evaluated
}

var csvHeader = []string{"step", "epoch", "lr", "loss", "accuracy", "scored_tokens", "tokens", "grad_norm", "tokens_per_s", "elapsed_s", "eval_loss"}

func (s StepStats) record() []string {
	f := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return strconv.FormatFloat(v, 'g', 8, 64)
	}
	return []string{
		strconv.Itoa(s.Step), strconv.Itoa(s.Epoch), f(s.LR), f(s.Loss), f(s.Accuracy), strconv.Itoa(s.Scored),
		strconv.Itoa(s.Tokens), f(s.GradNorm), f(s.TokensPS), f(s.Elapsed), f(s.EvalLoss),
	}
}

// logPoint is what the plot needs from one CSV row.
type logPoint struct {
	step           int
	loss, evalLoss float64
}

// stepLog appends one CSV row per step, flushed after each, so that the
// file is complete up to the last finished step after any stop.
type stepLog struct {
	path   string
	f      *os.File
	w      *csv.Writer
	points []logPoint
}

// openStepLog starts the log. When resuming after step keep, rows of later
// steps (written after the checkpoint, then lost with the run) are dropped
// and the earlier ones kept; otherwise the file starts empty.
func openStepLog(path string, keep int) (*stepLog, error) {
	var old [][]string
	if keep > 0 {
		f, err := os.Open(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err == nil {
			old, err = csv.NewReader(bufio.NewReader(f)).ReadAll()
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	l := &stepLog{path: path, f: f, w: csv.NewWriter(f)}
	if err := l.w.Write(csvHeader); err != nil {
		f.Close()
		return nil, err
	}
	for i, rec := range old {
		if i == 0 || len(rec) != len(csvHeader) {
			continue
		}
		s, err := strconv.Atoi(rec[0])
		if err != nil || s > keep {
			continue
		}
		if err := l.w.Write(rec); err != nil {
			f.Close()
			return nil, err
		}
		p := logPoint{step: s, loss: parseFloat(rec[3]), evalLoss: parseFloat(rec[10])}
		l.points = append(l.points, p)
	}
	l.w.Flush()
	return l, l.w.Error()
}

func parseFloat(s string) float64 {
	if s == "" {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

func (l *stepLog) add(s StepStats) error {
	l.points = append(l.points, logPoint{step: s.Step, loss: s.Loss, evalLoss: s.EvalLoss})
	if err := l.w.Write(s.record()); err != nil {
		return err
	}
	l.w.Flush()
	return l.w.Error()
}

func (l *stepLog) Close() error {
	l.w.Flush()
	if err := l.w.Error(); err != nil {
		l.f.Close()
		return err
	}
	return l.f.Close()
}

// plotLoss draws the training loss per step and the held-out loss where it
// was measured. The axes are padded so the first and last points are not
// cut by the frame, the x axis has whole-step ticks, the y ticks carry as
// many decimals as their spacing needs (a short run whose loss moves in
// the third decimal still gets distinct labels), and the legend sits
// inside the top-right corner of the data area.
func plotLoss(path string, points []logPoint, title string) error {
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(8) // off the image's top edge
	p.X.Label.Text = "optimizer step"
	p.Y.Label.Text = "loss per scored token (nats)"
	var train, eval plotter.XYs
	for _, pt := range points {
		if !math.IsNaN(pt.loss) {
			train = append(train, plotter.XY{X: float64(pt.step), Y: pt.loss})
		}
		if !math.IsNaN(pt.evalLoss) {
			eval = append(eval, plotter.XY{X: float64(pt.step), Y: pt.evalLoss})
		}
	}
	if len(train) == 0 {
		return fmt.Errorf("plot %s: no steps logged", path)
	}
	tl, err := plotter.NewLine(train)
	if err != nil {
		return err
	}
	p.Add(plotter.NewGrid(), tl)
	p.Legend.Add("train", tl)
	if len(eval) > 0 {
		el, ep, err := plotter.NewLinePoints(eval)
		if err != nil {
			return err
		}
		red := color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
		el.Color, ep.Color = red, red
		el.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		p.Add(el, ep)
		p.Legend.Add("held-out", el, ep)
	}
	xmin, xmax, ymin, ymax := bounds(train, eval)
	xpad := math.Max(0.5, 0.02*(xmax-xmin))
	ypad := 0.05 * (ymax - ymin)
	if ypad == 0 {
		ypad = math.Max(0.05*math.Abs(ymax), 0.01)
	}
	p.X.Min, p.X.Max = xmin-xpad, xmax+xpad
	p.Y.Min, p.Y.Max = math.Max(0, ymin-ypad), ymax+ypad
	p.X.Tick.Marker = wholeTicks{}
	p.Y.Tick.Marker = decimalTicks{}
	p.Legend.Top = true
	p.Legend.XOffs = -vg.Points(6)
	p.Legend.YOffs = -vg.Points(4)
	return p.Save(7*vg.Inch, 4*vg.Inch, path)
}

// bounds is the range of every point of the series.
func bounds(series ...plotter.XYs) (xmin, xmax, ymin, ymax float64) {
	xmin, ymin = math.Inf(1), math.Inf(1)
	xmax, ymax = math.Inf(-1), math.Inf(-1)
	for _, xys := range series {
		for _, pt := range xys {
			xmin, xmax = math.Min(xmin, pt.X), math.Max(xmax, pt.X)
			ymin, ymax = math.Min(ymin, pt.Y), math.Max(ymax, pt.Y)
		}
	}
	return xmin, xmax, ymin, ymax
}

// wholeTicks labels an axis of step numbers with whole numbers only: a run
// of three steps gets ticks 1, 2, 3, never 1.5.
type wholeTicks struct{}

// Ticks implements plot.Ticker.
func (wholeTicks) Ticks(lo, hi float64) []plot.Tick {
	step := math.Max(1, niceStep((hi-lo)/6))
	var ticks []plot.Tick
	// No tick below step 0 (the axis is padded to the left of the first
	// step), and never a "-0": Ceil(-0.5) is negative zero.
	for v := math.Max(0, math.Ceil(lo/step)*step); v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v+0, 'f', 0, 64)})
	}
	return ticks
}

// decimalTicks places about six ticks at round values and labels them with
// the decimals their spacing needs, so no two labels read the same.
type decimalTicks struct{}

// Ticks implements plot.Ticker.
func (decimalTicks) Ticks(lo, hi float64) []plot.Tick {
	step := niceStep((hi - lo) / 6)
	if step <= 0 || math.IsNaN(step) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 6, 64)}}
	}
	decimals := max(0, int(-math.Floor(math.Log10(step))))
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		if math.Abs(v) < step*1e-9 {
			v = 0 // not "-0" nor "-0.000"
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals, 64)})
	}
	return ticks
}

// niceStep rounds a raw tick spacing up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 0
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}
