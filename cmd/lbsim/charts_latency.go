package main

import (
	"fmt"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// logValueTicks labels a log10 axis with the values: 0.1, 1, 10, 100 and
// 2 and 5 between.
type logValueTicks struct{}

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

func logGrid(lo, hi float64, n int) []float64 {
	out := make([]float64, n)
	a, b := math.Log(lo), math.Log(hi)
	for i := range out {
		out[i] = math.Exp(a + (b-a)*float64(i)/float64(n-1))
	}
	return out
}
