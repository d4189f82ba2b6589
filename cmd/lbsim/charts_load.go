package main

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// loadGrid is a heat map's grid: z[backend][sample], already scaled.
type loadGrid struct {
	z      [][]float64
	dt     float64
	y0, dy float64 // Y(r) = y0 + r×dy; dy 0 means 1
}

func (g loadGrid) Dims() (c, r int) { return len(g.z[0]), len(g.z) }

func (g loadGrid) Z(c, r int) float64 { return g.z[r][c] }

func (g loadGrid) X(c int) float64 { return (float64(c) + 0.5) * g.dt }

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
