package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chart draws the speed ratios of the targets: one horizontal bar a target at its median, a
// whisker from the rounds' minimum to their maximum, and a line at 1 (as fast as the reference).
// Green bars meet their target, red ones miss it.
func chart(ts []target, path string) error {
	var rows []target
	for _, t := range ts {
		if t.ratio && t.value.ok() {
			rows = append(rows, t)
		}
	}
	p := plot.New()
	p.Title.Text = "Speed ratios, per round: median (bar), min–max (whisker)"
	p.X.Label.Text = "÷ reference (higher is faster)"
	labels := make([]string, len(rows))
	// The axis stops at clip: a ratio past it (the library against mautrix over TLS, say) is drawn
	// to the edge with its median written beside.
	const clip = 2.2
	top := 1.2
	w := vg.Points(12)
	var far plotter.XYLabels
	for i, t := range rows {
		labels[i] = t.label
		top = min(max(top, t.value.max*1.05), clip)
		if t.value.med > clip {
			far.XYs = append(far.XYs, plotter.XY{X: clip * 0.9, Y: float64(i) + 0.25})
			far.Labels = append(far.Labels, fmt.Sprintf("%.1f×", t.value.med))
		}
		vals := make(plotter.Values, len(rows))
		vals[i] = min(t.value.med, clip)
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bars.Horizontal = true
		bars.LineStyle.Width = 0
		bars.Color = color.RGBA{R: 52, G: 168, B: 83, A: 255}
		if !t.met(t.value.med) {
			bars.Color = color.RGBA{R: 219, G: 68, B: 55, A: 255}
		}
		p.Add(bars)
		whisker, err := plotter.NewLine(plotter.XYs{{X: min(t.value.min, clip), Y: float64(i)}, {X: min(t.value.max, clip), Y: float64(i)}})
		if err != nil {
			return err
		}
		whisker.LineStyle.Width = vg.Points(1.5)
		p.Add(whisker)
	}
	one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.5}, {X: 1, Y: float64(len(rows)) - 0.5}})
	if err != nil {
		return err
	}
	one.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	if len(far.XYs) > 0 {
		l, err := plotter.NewLabels(far)
		if err != nil {
			return err
		}
		p.Add(l)
	}
	p.NominalY(labels...)
	p.X.Min, p.X.Max = 0, top
	img := vgimg.New(vg.Points(900), vg.Points(float64(60+22*len(rows))))
	p.Draw(draw.New(img))
	png := vgimg.PngCanvas{Canvas: img}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := png.WriteTo(f); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return f.Close()
}
