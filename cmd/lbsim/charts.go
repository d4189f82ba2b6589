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

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
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

// The load heat maps show calls in service or queued per slot, on a log
// scale diverging at 1 (every slot busy): blue has spare capacity, red
// queues. loadFloor is the lowest value told apart, loadCeil the highest.
const (
	loadFloor = 0.05
	loadCeil  = 200
)

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

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := (plot.DefaultTicks{}).Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', -1, 64)
		}
	}
	return ts
}

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
