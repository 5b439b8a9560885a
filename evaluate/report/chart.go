package report

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Chart size and resolution: two panels side by side, 1000x400 pixels.
const (
	chartWidth  = 10 * vg.Inch
	chartHeight = 4 * vg.Inch
	chartDPI    = 100
)

// WriteChart draws the summary as a PNG with two panels: accuracy per
// mode as bars with 95% Wilson whiskers, and accuracy against the number
// of steps as one line per mode (empty, and titled so, when no item has a
// known step count).
func WriteChart(w io.Writer, s Summary) error {
	if len(s.Modes) == 0 {
		return errors.New("report: no results to chart")
	}
	bars, err := modePlot(s)
	if err != nil {
		return err
	}
	lines, err := stepsPlot(s)
	if err != nil {
		return err
	}
	img := vgimg.NewWith(vgimg.UseWH(chartWidth, chartHeight), vgimg.UseDPI(chartDPI))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Centimeter, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{{bars, lines}}, tiles, dc)
	bars.Draw(canvases[0][0])
	lines.Draw(canvases[0][1])
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("report: writing PNG: %w", err)
	}
	return nil
}

// SaveChart writes WriteChart's PNG to a file.
func SaveChart(path string, s Summary) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteChart(f, s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// whiskers adapts mode accuracies and intervals to plotter.YErrorBars,
// which wants distances below and above each point.
type whiskers struct {
	modes []ModeSummary
}

func (wh whiskers) Len() int { return len(wh.modes) }

func (wh whiskers) XY(i int) (float64, float64) { return float64(i), wh.modes[i].Accuracy }

func (wh whiskers) YError(i int) (float64, float64) {
	m := wh.modes[i]
	return m.Accuracy - m.CI.Low, m.CI.High - m.Accuracy
}

func modePlot(s Summary) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Accuracy by mode (95% Wilson CI)"
	p.Y.Label.Text = "accuracy"
	p.Y.Min, p.Y.Max = 0, 1
	names := make([]string, len(s.Modes))
	for i, m := range s.Modes {
		names[i] = m.Mode
		bar, err := plotter.NewBarChart(plotter.Values{m.Accuracy}, vg.Points(40))
		if err != nil {
			return nil, fmt.Errorf("report: bar for mode %q: %w", m.Mode, err)
		}
		bar.XMin = float64(i)
		bar.Color = plotutil.Color(i)
		bar.LineStyle.Width = 0
		p.Add(bar)
	}
	eb, err := plotter.NewYErrorBars(whiskers{s.Modes})
	if err != nil {
		return nil, fmt.Errorf("report: confidence whiskers: %w", err)
	}
	eb.LineStyle.Width = vg.Points(1.5)
	p.Add(eb)
	p.NominalX(names...)
	p.Add(plotter.NewGrid())
	return p, nil
}

func stepsPlot(s Summary) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Accuracy by number of steps"
	p.X.Label.Text = "steps"
	p.Y.Label.Text = "accuracy"
	p.Y.Min, p.Y.Max = 0, 1
	if len(s.Steps) == 0 {
		p.Title.Text += " (no step data)"
		p.X.Min, p.X.Max = 0, 1
		return p, nil
	}
	p.X.Min = float64(s.Steps[0]) - 0.5
	p.X.Max = float64(s.Steps[len(s.Steps)-1]) + 0.5
	var ticks []plot.Tick
	for _, k := range s.Steps {
		ticks = append(ticks, plot.Tick{Value: float64(k), Label: strconv.Itoa(k)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	// Headroom above 100% keeps the legend off the lines; ticks stop at 1.
	p.Y.Max = 1.25
	p.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0.0"}, {Value: 0.25}, {Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1.0"}})
	p.Legend.Top = true
	p.Legend.Left = true
	for i, m := range s.Modes {
		if len(m.ByStep) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(m.ByStep))
		for j, st := range m.ByStep {
			xys[j] = plotter.XY{X: float64(st.Steps), Y: st.Accuracy}
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("report: steps line for mode %q: %w", m.Mode, err)
		}
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		points.Color = plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(m.Mode, line, points)
	}
	p.Add(plotter.NewGrid())
	return p, nil
}
