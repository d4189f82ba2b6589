package main

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// chartNames are the charts WriteCharts can write.
var chartNames = []string{"load", "latency", "keys-moved", "share", "zones"}

// pngDPI is the resolution of the PNG charts.
const pngDPI = 110

// WriteCharts writes the scenario's charts into dir, as PNG and SVG:
// <prefix>-load (load per backend over time, one panel per strategy),
// <prefix>-latency (latency CDF and tail per strategy), when the
// picker's set changed and a hash strategy ran, <prefix>-keys-moved, and
// when the scenario has events, <prefix>-share (the focus backend's share
// of the attempts over time). It returns the files written.
//
// With only, it writes only the charts named (see chartNames).
func WriteCharts(dir, prefix string, sc *Scenario, results []*Result, only ...string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	type chart struct {
		name string
		w, h vg.Length
		draw func(draw.Canvas)
	}
	rows := (len(results) + 1) / 2
	charts := []chart{
		{"load", 11 * vg.Inch, vg.Length(1+2.1*float64(rows)) * vg.Inch, func(c draw.Canvas) { drawLoad(c, sc, results) }},
		{"latency", 11 * vg.Inch, 4.8 * vg.Inch, func(c draw.Canvas) { drawLatency(c, sc, results) }},
	}
	if hasMoves(results) {
		charts = append(charts, chart{"keys-moved", 11 * vg.Inch, 4.5 * vg.Inch, func(c draw.Canvas) { drawMoves(c, sc, results) }})
	}
	if hasEvents(sc) {
		charts = append(charts, chart{"share", 11 * vg.Inch, 4.5 * vg.Inch, func(c draw.Canvas) { drawShares(c, sc, results) }})
	}
	if len(sc.ClientZones) > 0 {
		charts = append(charts, chart{"zones", 11 * vg.Inch, 4.5 * vg.Inch, func(c draw.Canvas) { drawCrossZone(c, sc, results) }})
	}
	var files []string
	for _, ch := range charts {
		if len(only) > 0 && !slices.Contains(only, ch.name) {
			continue
		}
		base := filepath.Join(dir, prefix+"-"+ch.name)
		png := vgimg.NewWith(vgimg.UseWH(ch.w, ch.h), vgimg.UseDPI(pngDPI), vgimg.UseBackgroundColor(color.White))
		ch.draw(draw.New(png))
		if err := writeTo(base+".png", vgimg.PngCanvas{Canvas: png}); err != nil {
			return files, err
		}
		svg := vgsvg.New(ch.w, ch.h)
		dc := draw.New(svg)
		dc.SetColor(color.White)
		dc.Fill(dc.Rectangle.Path())
		ch.draw(dc)
		var buf bytes.Buffer
		if _, err := svg.WriteTo(&buf); err != nil {
			return files, err
		}
		// vgsvg embeds the heat maps' PNG images as "image/jpg", and
		// without preserveAspectRatio="none" SVG renderers letterbox them
		// instead of stretching them over the plot: fix both.
		fixed := bytes.ReplaceAll(buf.Bytes(), []byte("data:image/jpg;base64,iVBORw0KGgo"), []byte("data:image/png;base64,iVBORw0KGgo"))
		fixed = bytes.ReplaceAll(fixed, []byte("<image "), []byte(`<image preserveAspectRatio="none" `))
		if err := os.WriteFile(base+".svg", fixed, 0o644); err != nil {
			return files, err
		}
		files = append(files, base+".png", base+".svg")
	}
	return files, nil
}

func writeTo(path string, w io.WriterTo) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := w.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// strategyColors: one distinct color per strategy, in strategyNames order.
var strategyColors = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, // round-robin: blue
	{0xff, 0x7f, 0x0e, 0xff}, // weighted-round-robin: orange
	{0x7f, 0x7f, 0x7f, 0xff}, // random: grey
	{0xbc, 0xbd, 0x22, 0xff}, // weighted-random: olive
	{0x2c, 0xa0, 0x2c, 0xff}, // p2c: green
	{0xd6, 0x27, 0x28, 0xff}, // ring: red
	{0x94, 0x67, 0xbd, 0xff}, // ring-bounded: purple
	{0x8c, 0x56, 0x4b, 0xff}, // maglev: brown
}

func styleFor(name string) draw.LineStyle {
	i := 0
	for j, n := range strategyNames {
		if n == name {
			i = j
		}
	}
	ls := draw.LineStyle{Color: strategyColors[i%len(strategyColors)], Width: vg.Points(1.6)}
	if i%2 == 1 {
		ls.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	}
	return ls
}

func titleStyle(size vg.Length) text.Style {
	return text.Style{
		Color:   color.Black,
		Font:    font.From(plot.DefaultFont, size),
		XAlign:  draw.XCenter,
		YAlign:  draw.YTop,
		Handler: plot.DefaultTextHandler,
	}
}

// header draws a chart title and lines of subtitle at the top of c and
// returns the rest.
func header(c draw.Canvas, title string, sub ...string) draw.Canvas {
	top := c.Max.Y - vg.Points(6)
	mid := (c.Min.X + c.Max.X) / 2
	ts := titleStyle(15)
	c.FillText(ts, vg.Point{X: mid, Y: top}, title)
	h := ts.Height(title) + vg.Points(8)
	ss := titleStyle(10.5)
	ss.Color = color.Gray{0x40}
	for _, line := range sub {
		c.FillText(ss, vg.Point{X: mid, Y: top - h}, line)
		h += ss.Height(line) + vg.Points(3)
	}
	return draw.Crop(c, 0, 0, 0, -h-vg.Points(10))
}

func scenarioLine(sc *Scenario, results []*Result) string {
	n := 0
	for _, g := range sc.Backends {
		n += g.Count
	}
	var reqs int64
	if len(results) > 0 {
		reqs = results[0].Requests
	}
	return fmt.Sprintf("%s requests over %v simulated, %d backends, %d clients, %s keys, seed %d",
		thousands(reqs), sc.Duration.D(), n, sc.Clients, keysText(sc.Keys), sc.Seed)
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// loadGrid is a heat map's grid: z[backend][sample], already scaled.
type loadGrid struct {
	z      [][]float64
	dt     float64
	y0, dy float64 // Y(r) = y0 + r×dy; dy 0 means 1
}

func (g loadGrid) Dims() (c, r int)   { return len(g.z[0]), len(g.z) }
func (g loadGrid) Z(c, r int) float64 { return g.z[r][c] }
func (g loadGrid) X(c int) float64    { return (float64(c) + 0.5) * g.dt }
func (g loadGrid) Y(r int) float64 {
	if g.dy == 0 {
		return float64(r)
	}
	return g.y0 + float64(r)*g.dy
}

// divergingPalette returns n colors for values from lo (< 0) to hi (> 0)
// spread evenly: deep blue at lo, white at 0, dark red at hi.
func divergingPalette(lo, hi float64, n int) palette.Palette {
	blue := [][3]float64{{255, 255, 255}, {140, 180, 235}, {40, 70, 170}}
	red := [][3]float64{{255, 255, 255}, {245, 160, 90}, {165, 15, 30}}
	ramp := func(stops [][3]float64, t float64) color.Color {
		t = min(max(t, 0), 1) * float64(len(stops)-1)
		i := min(int(t), len(stops)-2)
		f := t - float64(i)
		var c [3]uint8
		for k := range c {
			c[k] = uint8(stops[i][k] + (stops[i+1][k]-stops[i][k])*f + 0.5)
		}
		return color.RGBA{c[0], c[1], c[2], 0xff}
	}
	cs := make([]color.Color, n)
	for i := range cs {
		v := lo + (hi-lo)*float64(i)/float64(n-1)
		if v < 0 {
			cs[i] = ramp(blue, v/lo)
		} else {
			cs[i] = ramp(red, v/hi)
		}
	}
	return colors(cs)
}

type colors []color.Color

func (c colors) Colors() []color.Color { return c }

// The load heat maps show calls in service or queued per slot, on a log
// scale diverging at 1 (every slot busy): blue has spare capacity, red
// queues. loadFloor is the lowest value told apart, loadCeil the highest.
const (
	loadFloor = 0.05
	loadCeil  = 200
)

func drawLoad(c draw.Canvas, sc *Scenario, results []*Result) {
	c = header(c, fmt.Sprintf("%s: load per backend over time", sc.Name),
		"calls in service or queued per slot, mean per interval: blue = spare capacity, white = every slot busy, red = queueing",
		scenarioLine(sc, results))
	hi := 2.0
	for _, r := range results {
		for b, row := range r.Load {
			for _, v := range row {
				hi = max(hi, v/float64(r.Slots[b]))
			}
		}
	}
	lo, top := math.Log10(loadFloor), math.Log10(min(hi, loadCeil))
	pal := divergingPalette(lo, top, 255)

	// Color bar on the right, the panels on the rest.
	barW := vg.Points(80)
	bar := draw.Crop(c, c.Max.X-c.Min.X-barW, 0, 0, 0)
	panels := draw.Crop(c, 0, -barW, 0, 0)

	rows := (len(results) + 1) / 2
	plots := make([][]*plot.Plot, rows)
	for i := range plots {
		plots[i] = make([]*plot.Plot, 2)
	}
	for i, r := range results {
		p := plot.New()
		p.Title.Text = r.Strategy
		p.Title.TextStyle.Font.Size = 12
		z := make([][]float64, len(r.Load))
		for b, row := range r.Load {
			z[b] = make([]float64, len(row))
			for k, v := range row {
				z[b][k] = math.Log10(min(max(v/float64(r.Slots[b]), loadFloor), loadCeil))
			}
		}
		h := plotter.NewHeatMap(loadGrid{z: z, dt: r.sampleInterval.Seconds()}, pal)
		h.Min, h.Max = lo, top
		h.Rasterized = true
		p.Add(h)
		p.X.Label.Text = "simulated time (s)"
		p.Y.Label.Text = "backend"
		p.X.Tick.Marker, p.Y.Tick.Marker = plainTicks{}, plainTicks{}
		p.X.Padding, p.Y.Padding = 0, 0
		plots[i/2][i%2] = p
	}
	for i := len(results); i < rows*2; i++ { // an empty last tile
		p := plot.New()
		p.HideAxes()
		plots[i/2][i%2] = p
	}
	tiles := draw.Tiles{Rows: rows, Cols: 2, PadX: vg.Points(18), PadY: vg.Points(20), PadLeft: vg.Points(6), PadBottom: vg.Points(4), PadTop: vg.Points(4)}
	canvases := plot.Align(plots, tiles, panels)
	for i := range plots {
		for j := range plots[i] {
			plots[i][j].Draw(canvases[i][j])
		}
	}

	cb := plot.New()
	cb.Title.Text = "per slot"
	cb.Y.Min, cb.Y.Max = lo, top
	cb.Title.TextStyle.Font.Size = 11
	const n = 255
	ramp := make([][]float64, n)
	for i := range ramp {
		ramp[i] = []float64{lo + (top-lo)*float64(i)/float64(n-1)}
	}
	bh := plotter.NewHeatMap(loadGrid{z: ramp, dt: 1, y0: lo, dy: (top - lo) / float64(n-1)}, pal)
	bh.Min, bh.Max = lo, top
	bh.Rasterized = true
	cb.Add(bh)
	cb.HideX()
	cb.Y.Padding = 0
	cb.Y.Tick.Marker = logValueTicks{}
	barArea := draw.Crop(bar, vg.Points(14), -vg.Points(24), vg.Points(40), -vg.Points(20))
	cb.Draw(barArea)
}

// logValueTicks labels a log10 axis with the values: 0.1, 1, 10, 100 and
// 2 and 5 between.
type logValueTicks struct{}

func (logValueTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(lo); e <= math.Ceil(hi); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			x := math.Log10(v)
			if x < lo-1e-9 || x > hi+1e-9 {
				continue
			}
			label := strconv.FormatFloat(v, 'g', -1, 64)
			ts = append(ts, plot.Tick{Value: x, Label: label})
		}
	}
	return ts
}

func drawLatency(c draw.Canvas, sc *Scenario, results []*Result) {
	c = header(c, fmt.Sprintf("%s: latency per strategy", sc.Name),
		"successful requests, from arrival to response (queueing and retries included)",
		scenarioLine(sc, results))
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for _, r := range results {
		if r.Successes() > 0 {
			lo, hi = min(lo, r.Quantile(0)), max(hi, r.Quantile(1))
		}
	}
	if hi == 0 {
		return
	}
	lo = max(lo, time.Microsecond)
	grid := logGrid(float64(lo)/1e6, float64(hi)/1e6, 400)

	cdf, tail := plot.New(), plot.New()
	cdf.Title.Text = "CDF: share of requests at most this slow"
	tail.Title.Text = "tail: share of requests slower than this (log)"
	for _, p := range []*plot.Plot{cdf, tail} {
		p.Title.TextStyle.Font.Size = 12
		p.X.Label.Text = "latency (log scale)"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = msTicks{}
		p.Add(plotter.NewGrid())
	}
	cdf.Y.Label.Text = "share of requests"
	cdf.Y.Min, cdf.Y.Max = 0, 1
	tail.Y.Label.Text = "share of requests slower"
	tail.Y.Scale = plot.LogScale{}
	tail.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	tail.Y.Min, tail.Y.Max = 1e-4, 1
	for _, r := range results {
		if r.Successes() == 0 {
			continue
		}
		var a, b plotter.XYs
		for _, x := range grid {
			f := r.FractionAtMost(time.Duration(x * 1e6))
			a = append(a, plotter.XY{X: x, Y: f})
			if 1-f >= 1e-4 {
				b = append(b, plotter.XY{X: x, Y: 1 - f})
			}
		}
		for _, pair := range []struct {
			p   *plot.Plot
			xys plotter.XYs
		}{{cdf, a}, {tail, b}} {
			if len(pair.xys) == 0 {
				continue
			}
			l, err := plotter.NewLine(pair.xys)
			if err != nil {
				continue
			}
			l.LineStyle = styleFor(r.Strategy)
			pair.p.Add(l)
			if pair.p == tail {
				pair.p.Legend.Add(r.Strategy, l)
			}
		}
	}
	tail.Legend.Left = true
	tail.Legend.XOffs = vg.Points(8)
	tail.Legend.YOffs = vg.Points(8)
	tail.Legend.TextStyle.Font.Size = 10
	tail.Legend.ThumbnailWidth = vg.Points(28)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(24), PadLeft: vg.Points(6), PadRight: vg.Points(10), PadBottom: vg.Points(4)}
	cdf.Draw(tiles.At(c, 0, 0))
	tail.Draw(tiles.At(c, 1, 0))
}

// msTicks labels a log axis of milliseconds at 1, 2, 5 × 10^k (1 and
// 3 × 10^k over more than 2.5 decades, 10^k over more than 4), as ms or s.
type msTicks struct{}

func (msTicks) Ticks(lo, hi float64) []plot.Tick {
	steps := []float64{1, 2, 5}
	switch decades := math.Log10(hi / lo); {
	case decades > 4:
		steps = []float64{1}
	case decades > 2.5:
		steps = []float64{1, 3}
	}
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range steps {
			v := m * math.Pow(10, e)
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			label := strconv.FormatFloat(v, 'g', -1, 64) + "ms"
			if v >= 1000 {
				label = strconv.FormatFloat(v/1000, 'g', -1, 64) + "s"
			}
			ts = append(ts, plot.Tick{Value: v, Label: label})
		}
	}
	return ts
}

func logGrid(lo, hi float64, n int) []float64 {
	out := make([]float64, n)
	a, b := math.Log(lo), math.Log(hi)
	for i := range out {
		out[i] = math.Exp(a + (b-a)*float64(i)/float64(n-1))
	}
	return out
}

func hasMoves(results []*Result) bool {
	for _, r := range results {
		if hashes(r.Strategy) && len(r.Moves) > 0 {
			return true
		}
	}
	return false
}

func drawMoves(c draw.Canvas, sc *Scenario, results []*Result) {
	c = header(c, fmt.Sprintf("%s: keys moved at each change of the backend set", sc.Name),
		fmt.Sprintf("share of the key space (%s probe keys) placed on another backend; ideal: the least share that had to move", thousands(int64(min(sc.Keys.Count, probeKeys)))))
	type series struct {
		name string
		v    plotter.Values
		col  color.Color
	}
	var ref *Result
	var ss []series
	for _, r := range results {
		if !hashes(r.Strategy) || len(r.Moves) == 0 {
			continue
		}
		if ref == nil {
			ref = r
			var ideal plotter.Values
			for _, m := range r.Moves {
				ideal = append(ideal, 100*m.Ideal)
			}
			ss = append(ss, series{"ideal", ideal, color.Gray{0x60}})
		}
		var v plotter.Values
		for _, m := range r.Moves {
			v = append(v, 100*m.Moved)
		}
		// Strategies with the same placement (ring and ring-bounded: the
		// bound changes where calls go under load, not the ring) share a bar.
		merged := false
		for k := range ss {
			if k > 0 && slices.Equal(ss[k].v, v) {
				ss[k].name += ", " + r.Strategy
				merged = true
			}
		}
		if !merged {
			ss = append(ss, series{r.Strategy, v, styleFor(r.Strategy).Color})
		}
	}
	if ref == nil {
		return
	}
	p := plot.New()
	p.Y.Label.Text = "keys moved (% of the key space)"
	p.Y.Tick.Marker = pctTicks{}
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	n := len(ref.Moves)
	labels := make([]string, n)
	for i, m := range ref.Moves {
		if n <= 12 {
			labels[i] = fmt.Sprintf("%s at %gs", m.Label, m.At.Seconds())
		} else {
			labels[i] = strconv.Itoa(i + 1)
		}
	}
	if n > 12 {
		p.X.Label.Text = fmt.Sprintf("change number (%s, ..., %s: see the table)", ref.Moves[0].Label, ref.Moves[n-1].Label)
	} else {
		p.X.Label.Text = "change"
	}
	top := 0.0
	for _, se := range ss {
		for _, v := range se.v {
			top = max(top, v)
		}
	}
	p.Y.Max = top * 1.3 // room for the legend
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	group := (c.Max.X - c.Min.X - vg.Inch) / vg.Length(n)
	w := group * 0.8 / vg.Length(len(ss))
	for k, se := range ss {
		b, err := plotter.NewBarChart(se.v, w)
		if err != nil {
			continue
		}
		b.Color = se.col
		b.LineStyle.Width = 0
		b.Offset = (vg.Length(k) - vg.Length(len(ss)-1)/2) * w
		p.Add(b)
		p.Legend.Add(se.name, b)
	}
	p.NominalX(labels...)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = 10
	p.Legend.XOffs = -vg.Points(4)
	p.Draw(draw.Crop(c, vg.Points(6), -vg.Points(10), vg.Points(4), 0))
}

// plainTicks are the default ticks labelled as short as they can be
// ("25", not "25.00").
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := (plot.DefaultTicks{}).Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', -1, 64)
		}
	}
	return ts
}

// pctTicks labels a percent axis.
type pctTicks struct{}

func (pctTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for _, t := range (plot.DefaultTicks{}).Ticks(lo, hi) {
		if t.Label != "" {
			t.Label = strconv.FormatFloat(t.Value, 'g', -1, 64) + "%"
		}
		ts = append(ts, t)
	}
	return ts
}
