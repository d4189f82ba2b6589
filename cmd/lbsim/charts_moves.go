package main

import (
	"fmt"
	"image/color"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

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

// pctTicks labels a percent axis.
type pctTicks struct{}
