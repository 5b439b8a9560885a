package report

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Chart geometry: one panel is 5×4 inches at 100 dpi, plus a band at the
// top for the figure's title and one at the bottom for the legend.
const (
	panelWidth  = 5 * vg.Inch
	chartHeight = 4.4 * vg.Inch
	titleBand   = 0.4 * vg.Inch
	legendBand  = 0.35 * vg.Inch
	chartDPI    = 100
)

// TaskResult is one mode's tally on the items of one task (a problem
// family or answer kind), for the chart's per-task panel.
type TaskResult struct {
	Mode, Task string
	N, Correct int
}

// ChartOptions are what the chart says beyond the Summary.
type ChartOptions struct {
	// Title heads the figure, e.g. "synth · model.gguf + lora.gguf".
	Title string
	// Tasks adds a panel of accuracy per task and mode when it names more
	// than one task.
	Tasks []TaskResult
}

// WriteChart draws the summary as a PNG: a title naming what was
// evaluated, then panels side by side: accuracy per mode as bars labelled
// with their value and 95% Wilson whiskers; when the items have more than
// one step count, accuracy against the number of steps, one line per mode
// with its 95% band; and, when there are several tasks, accuracy per task.
// A legend under the panels names each mode's colour and marker, so the
// modes stay apart even where every bar is at 0 and lines coincide, and no
// legend covers the data. Accuracy axes run from 0 to 100%.
func WriteChart(w io.Writer, s Summary, opts ChartOptions) error {
	if len(s.Modes) == 0 {
		return errors.New("report: no results to chart")
	}
	panels := []*plot.Plot{}
	bars, err := modePlot(s)
	if err != nil {
		return err
	}
	panels = append(panels, bars)
	// A steps panel for a benchmark whose items all have one step count
	// (GSM8K: steps = 1) would only repeat the bars as points.
	if len(s.Steps) > 1 {
		lines, err := stepsPlot(s)
		if err != nil {
			return err
		}
		panels = append(panels, lines)
	}
	if tasks := taskNames(opts.Tasks); len(tasks) > 1 {
		tp, err := taskPlot(s, opts.Tasks, tasks)
		if err != nil {
			return err
		}
		panels = append(panels, tp)
	}
	width := vg.Length(len(panels)) * panelWidth
	img := vgimg.NewWith(vgimg.UseWH(width, chartHeight), vgimg.UseDPI(chartDPI))
	dc := draw.New(img)
	if opts.Title != "" {
		sty := plot.New().Title.TextStyle
		sty.Font.Size = vg.Points(14)
		sty.XAlign = draw.XCenter
		sty.YAlign = draw.YCenter
		dc.FillText(sty, vg.Point{X: width / 2, Y: chartHeight - titleBand/2}, opts.Title)
		dc.Max.Y -= titleBand
	}
	names := make([]string, len(s.Modes))
	for i, m := range s.Modes {
		names[i] = m.Mode
	}
	DrawLegend(dc, legendBand/2, names)
	dc.Min.Y += legendBand
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Centimeter, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align([][]*plot.Plot{panels}, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[0][i])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("report: writing PNG: %w", err)
	}
	return nil
}

// SaveChart writes WriteChart's PNG to a file.
func SaveChart(path string, s Summary, opts ChartOptions) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteChart(f, s, opts); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// DrawLegend draws one entry per mode name on one line centred on c at
// height y: a short line in the mode's colour (plotutil.Color(i)) with its
// marker (plotutil.Shape(i)), then the name. Charts put it in a band of
// their own, outside every panel's data area.
func DrawLegend(c draw.Canvas, y vg.Length, names []string) {
	sty := plot.New().Legend.TextStyle
	sty.Font.Size = vg.Points(11)
	sty.XAlign = draw.XLeft
	sty.YAlign = draw.YCenter
	const swatch, gap, between = 22, 5, 18 // points
	total := vg.Length(0)
	for i, n := range names {
		if i > 0 {
			total += vg.Points(between)
		}
		total += vg.Points(swatch+gap) + sty.Width(n)
	}
	x := (c.Min.X+c.Max.X)/2 - total/2
	for i, n := range names {
		col := plotutil.Color(i)
		c.StrokeLine2(draw.LineStyle{Color: col, Width: vg.Points(3)}, x, y, x+vg.Points(swatch), y)
		c.DrawGlyph(draw.GlyphStyle{Color: col, Radius: vg.Points(3.5), Shape: plotutil.Shape(i)}, vg.Point{X: x + vg.Points(swatch)/2, Y: y})
		c.FillText(sty, vg.Point{X: x + vg.Points(swatch+gap), Y: y}, n)
		x += vg.Points(swatch+gap+between) + sty.Width(n)
	}
}

// percentAxis makes an accuracy axis run from 0 to 100% with ticks every
// 20%.
func percentAxis(p *plot.Plot) {
	p.Y.Min, p.Y.Max = 0, 1
	var ticks []plot.Tick
	for v := 0; v <= 100; v += 10 {
		t := plot.Tick{Value: float64(v) / 100}
		if v%20 == 0 {
			t.Label = strconv.Itoa(v) + "%"
		}
		ticks = append(ticks, t)
	}
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Label.Text = "accuracy"
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

// valueLabels writes each bar's accuracy beside the top of the bar, to its
// right (offset: the bar's half width), so that the label never sits on a
// confidence whisker and stays inside the 100% axis. A 0% bar still gets
// its label, so an empty bar reads as a measured zero.
func valueLabels(xs, accs []float64, offset vg.Length) (*plotter.Labels, error) {
	xy := plotter.XYLabels{}
	for i, a := range accs {
		xy.XYs = append(xy.XYs, plotter.XY{X: xs[i], Y: min(a, 0.97)})
		xy.Labels = append(xy.Labels, fmt.Sprintf("%.0f%%", 100*a))
	}
	l, err := plotter.NewLabels(xy)
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign = draw.XLeft
		l.TextStyle[i].YAlign = draw.YCenter
		l.TextStyle[i].Font.Size = vg.Points(9)
	}
	l.Offset = vg.Point{X: offset + vg.Points(2)}
	return l, nil
}

func modePlot(s Summary) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Accuracy by mode (95% Wilson CI)"
	percentAxis(p)
	names := make([]string, len(s.Modes))
	xs := make([]float64, len(s.Modes))
	accs := make([]float64, len(s.Modes))
	for i, m := range s.Modes {
		names[i], xs[i], accs[i] = m.Mode, float64(i), m.Accuracy
		bar, err := plotter.NewBarChart(plotter.Values{m.Accuracy}, vg.Points(40))
		if err != nil {
			return nil, fmt.Errorf("report: bar for mode %q: %w", m.Mode, err)
		}
		bar.XMin = float64(i)
		bar.Color = plotutil.Color(i)
		// An outline in the bar's colour: a 0% bar still shows as a line
		// of its mode's colour on the axis.
		bar.LineStyle.Color = plotutil.Color(i)
		bar.LineStyle.Width = vg.Points(1.5)
		p.Add(bar)
	}
	eb, err := plotter.NewYErrorBars(whiskers{s.Modes})
	if err != nil {
		return nil, fmt.Errorf("report: confidence whiskers: %w", err)
	}
	eb.LineStyle.Width = vg.Points(1.5)
	labels, err := valueLabels(xs, accs, vg.Points(20))
	if err != nil {
		return nil, fmt.Errorf("report: bar labels: %w", err)
	}
	p.Add(plotter.NewGrid(), eb, labels)
	p.NominalX(names...)
	return p, nil
}

// band is a closed polygon from the lower bounds left to right and the
// upper bounds back: a confidence band around a line.
func band(xs, lo, hi []float64) plotter.XYs {
	var out plotter.XYs
	for i := range xs {
		out = append(out, plotter.XY{X: xs[i], Y: lo[i]})
	}
	for i := len(xs) - 1; i >= 0; i-- {
		out = append(out, plotter.XY{X: xs[i], Y: hi[i]})
	}
	return out
}

// translucent is c with the given opacity, for bands that must not hide
// the lines under them.
func translucent(c color.Color, alpha uint8) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: alpha}
}

func stepsPlot(s Summary) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Accuracy by number of steps (95% bands)"
	p.X.Label.Text = "steps"
	percentAxis(p)
	if len(s.Steps) == 0 {
		p.Title.Text = "Accuracy by number of steps (no step data)"
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
	p.Add(plotter.NewGrid())
	// Each mode is shifted sideways a little (dodged), so that modes with
	// equal accuracy, all at 0% for example, show side by side instead of
	// one hiding the others.
	span := float64(s.Steps[len(s.Steps)-1]-s.Steps[0]) + 1
	for i, m := range s.Modes {
		if len(m.ByStep) == 0 {
			continue
		}
		dx := (float64(i) - float64(len(s.Modes)-1)/2) * 0.025 * span
		xs := make([]float64, len(m.ByStep))
		lo := make([]float64, len(m.ByStep))
		hi := make([]float64, len(m.ByStep))
		xys := make(plotter.XYs, len(m.ByStep))
		for j, st := range m.ByStep {
			xs[j], lo[j], hi[j] = float64(st.Steps)+dx, st.CI.Low, st.CI.High
			xys[j] = plotter.XY{X: float64(st.Steps) + dx, Y: st.Accuracy}
		}
		if len(xs) > 1 {
			poly, err := plotter.NewPolygon(band(xs, lo, hi))
			if err != nil {
				return nil, fmt.Errorf("report: band for mode %q: %w", m.Mode, err)
			}
			poly.Color = translucent(plotutil.Color(i), 28)
			poly.LineStyle.Width = 0
			p.Add(poly)
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
	}
	return p, nil
}

// barTops are the label positions on top of bars, kept below 100% so the
// labels stay inside the axis.
func barTops(xs []float64, vals plotter.Values) plotter.XYs {
	out := make(plotter.XYs, len(xs))
	for i := range xs {
		out[i] = plotter.XY{X: xs[i], Y: min(vals[i], 0.95)}
	}
	return out
}

// percents labels values as whole percentages.
func percents(vals plotter.Values) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = fmt.Sprintf("%.0f%%", 100*v)
	}
	return out
}

// taskNames lists the tasks of results in first-seen order.
func taskNames(results []TaskResult) []string {
	var names []string
	seen := map[string]bool{}
	for _, r := range results {
		if !seen[r.Task] {
			seen[r.Task] = true
			names = append(names, r.Task)
		}
	}
	return names
}

// taskPlot groups one bar per mode for each task.
func taskPlot(s Summary, results []TaskResult, tasks []string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Accuracy by task"
	percentAxis(p)
	// Bars of one task sit side by side within 0.8 of the unit between
	// tasks; their width in points follows the panel's data width.
	width := vg.Points(min(24, 200/float64(len(s.Modes)*len(tasks))))
	p.Add(plotter.NewGrid())
	for i, m := range s.Modes {
		var xs []float64 // tasks this mode has results on: only those get a bar and a label
		var measured plotter.Values
		offset := vg.Length(float64(i)-float64(len(s.Modes)-1)/2) * width
		for j, task := range tasks {
			for _, r := range results {
				if r.Mode == m.Mode && r.Task == task && r.N > 0 {
					v := float64(r.Correct) / float64(r.N)
					xs = append(xs, float64(j))
					measured = append(measured, v)
					bar, err := plotter.NewBarChart(plotter.Values{v}, width)
					if err != nil {
						return nil, fmt.Errorf("report: task bars for mode %q: %w", m.Mode, err)
					}
					bar.XMin = float64(j)
					bar.Color = plotutil.Color(i)
					// The outline keeps a 0% bar visible as a line in
					// its mode's colour.
					bar.LineStyle.Color = plotutil.Color(i)
					bar.LineStyle.Width = vg.Points(1)
					bar.Offset = offset
					p.Add(bar)
					break
				}
			}
		}
		if len(xs) == 0 {
			continue
		}
		labels, err := plotter.NewLabels(plotter.XYLabels{XYs: barTops(xs, measured), Labels: percents(measured)})
		if err != nil {
			return nil, fmt.Errorf("report: task labels: %w", err)
		}
		// Labels run upwards from the top of their bar, one bar wide: side
		// by side they never overlap, however narrow the bars ("50%50%").
		// A bar too tall for its label above it gets it inside, downwards.
		for k := range labels.TextStyle {
			labels.TextStyle[k].Rotation = math.Pi / 2
			labels.TextStyle[k].XAlign = draw.XLeft
			labels.TextStyle[k].YAlign = draw.YCenter
			labels.TextStyle[k].Font.Size = vg.Points(8)
			labels.XYs[k].Y = measured[k]
			if measured[k] > 0.85 {
				labels.TextStyle[k].XAlign = draw.XRight
				labels.XYs[k].Y = measured[k] - 0.03
			}
		}
		labels.Offset = vg.Point{X: offset, Y: vg.Points(3)}
		p.Add(labels)
	}
	p.X.Min, p.X.Max = -0.5, float64(len(tasks))-0.5
	p.NominalX(tasks...)
	return p, nil
}
