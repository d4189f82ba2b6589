package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// drawShares draws the share of the attempts the scenario's focus backend
// (the one its first event names) gets over time, one line per strategy:
// where ejection, health checks, slow start and load scoring show.
func drawShares(c draw.Canvas, sc *Scenario, results []*Result) {
	focus := sc.focus()
	names := sc.backendNames()
	c = header(c, fmt.Sprintf("%s: %s's share of the attempts over time", sc.Name, names[focus]),
		"attempts on the backend over all attempts, per bin of time (retries and hedges included)",
		scenarioLine(sc, results))
	bins := min(60, len(results[0].PicksOver[0]))
	lines := make([][]float64, len(results))
	for i, r := range results {
		lines[i] = focusOver([]*Result{r}, focus, bins)
	}
	drawTimeLines(c, sc, results, fmt.Sprintf("%s's share of the attempts", names[focus]), lines)
}

// drawTimeLines draws one line per strategy of shares over time (NaN: no
// point), bins spread over the scenario's duration.
func drawTimeLines(c draw.Canvas, sc *Scenario, results []*Result, ylabel string, lines [][]float64) {
	p := plot.New()
	p.X.Label.Text = "simulated time (s)"
	p.Y.Label.Text = ylabel
	p.Y.Tick.Marker = pctTicks{}
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	top := 0.0
	for i, r := range results {
		l := shareLine(lines[i], sc.Duration.D().Seconds()/float64(max(len(lines[i]), 1)), &top)
		if l == nil {
			continue
		}
		l.LineStyle = styleFor(r.Strategy)
		p.Add(l)
		p.Legend.Add(r.Strategy, l)
	}
	p.Y.Max = max(top*1.7, 1) // room for the legend
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = 10
	p.Legend.ThumbnailWidth = vg.Points(28)
	p.Draw(draw.Crop(c, vg.Points(6), -vg.Points(10), vg.Points(4), 0))
}

// shareLine is the line of shares v (in bins of dt seconds, NaN: no
// point), in percent, raising top to its highest point; nil with fewer
// than two points.
func shareLine(v []float64, dt float64, top *float64) *plotter.Line {
	var xys plotter.XYs
	for b, x := range v {
		if !math.IsNaN(x) {
			xys = append(xys, plotter.XY{X: (float64(b) + 0.5) * dt, Y: 100 * x})
			*top = max(*top, 100*x)
		}
	}
	if len(xys) < 2 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil
	}
	return l
}

// hasEvents reports whether the scenario has events (faults, membership
// changes): the share chart is drawn for those.
func hasEvents(sc *Scenario) bool { return len(sc.Events) > 0 }

// WriteValidationCharts writes lbsim-validate.png and .svg into dir: per
// validation scenario, the focus backend's share of the attempts over
// time, lbsim's (solid) against the real fleet's (dashed), per strategy.
func WriteValidationCharts(dir string, cs []Comparison) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var scenarios []string
	byScenario := map[string][]Comparison{}
	for _, c := range cs {
		if byScenario[c.Scenario] == nil {
			scenarios = append(scenarios, c.Scenario)
		}
		byScenario[c.Scenario] = append(byScenario[c.Scenario], c)
	}
	const cols = 3
	rows := (len(scenarios) + cols - 1) / cols
	w, h := 11*vg.Inch, vg.Length(1+2.3*float64(rows))*vg.Inch
	drawAll := func(c draw.Canvas) {
		c = header(c, "lbsim against the real Transport: the focus backend's share of the attempts over time",
			"solid: lbsim (mean of its seeds); dashed: lb's real Transport on a loopback fleet; one line pair per strategy")
		plots := make([][]*plot.Plot, rows)
		for i := range plots {
			plots[i] = make([]*plot.Plot, cols)
		}
		for i, name := range scenarios {
			group := byScenario[name]
			p := plot.New()
			p.Title.Text = fmt.Sprintf("%s (%s)", name, group[0].Backends[group[0].Focus])
			p.Title.TextStyle.Font.Size = 11
			p.Y.Tick.Marker = pctTicks{}
			p.X.Tick.Marker = plainTicks{}
			p.Y.Min = 0
			p.X.Label.Text = "time (s)"
			dt := group[0].Duration.Seconds() / chartBins
			p.Add(plotter.NewGrid())
			top := 0.0
			for _, c := range group {
				for k, over := range [][]float64{c.Sim.FocusOver, c.Real.FocusOver} {
					l := shareLine(over, dt, &top)
					if l == nil {
						continue
					}
					ls := styleFor(c.Strategy)
					ls.Dashes = nil
					if k == 1 {
						ls.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
						ls.Width = vg.Points(1.2)
					}
					l.LineStyle = ls
					p.Add(l)
					if k == 0 && i == 0 {
						p.Legend.Add(c.Strategy, l)
					}
				}
			}
			p.Y.Max = max(top*1.2, 1)
			p.Legend.Top = true
			p.Legend.TextStyle.Font.Size = 9
			plots[i/cols][i%cols] = p
		}
		for i := len(scenarios); i < rows*cols; i++ {
			p := plot.New()
			p.HideAxes()
			plots[i/cols][i%cols] = p
		}
		tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(16), PadY: vg.Points(18), PadLeft: vg.Points(6), PadRight: vg.Points(8), PadBottom: vg.Points(4)}
		canvases := plot.Align(plots, tiles, c)
		for i := range plots {
			for j := range plots[i] {
				plots[i][j].Draw(canvases[i][j])
			}
		}
	}
	base := filepath.Join(dir, "lbsim-validate")
	png := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(pngDPI), vgimg.UseBackgroundColor(color.White))
	drawAll(draw.New(png))
	if err := writeTo(base+".png", vgimg.PngCanvas{Canvas: png}); err != nil {
		return nil, err
	}
	svg := vgsvg.New(w, h)
	dc := draw.New(svg)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	drawAll(dc)
	if err := writeTo(base+".svg", svg); err != nil {
		return nil, err
	}
	return []string{base + ".png", base + ".svg"}, nil
}

// drawCrossZone draws the share of the zoned clients' attempts that went
// to another zone, over time, one line per strategy.
func drawCrossZone(c draw.Canvas, sc *Scenario, results []*Result) {
	c = header(c, fmt.Sprintf("%s: cross-zone attempts over time", sc.Name),
		"attempts of a client to a backend of another zone, over all attempts, per bin of time",
		scenarioLine(sc, results))
	lines := make([][]float64, len(results))
	for i, r := range results {
		n := len(r.ZoneAttemptsOver)
		if n == 0 {
			continue
		}
		bins := min(60, n)
		cross, all := make([]float64, bins), make([]float64, bins)
		for k := range n {
			cross[k*bins/n] += float64(r.CrossZoneOver[k])
			all[k*bins/n] += float64(r.ZoneAttemptsOver[k])
		}
		lines[i] = make([]float64, bins)
		for b := range cross {
			lines[i][b] = math.NaN()
			if all[b] > 0 {
				lines[i][b] = cross[b] / all[b]
			}
		}
	}
	drawTimeLines(c, sc, results, "cross-zone attempts", lines)
}
