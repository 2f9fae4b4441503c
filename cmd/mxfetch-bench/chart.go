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

// chart draws two bar charts side by side: large-file throughput (MB/s) and small files per
// second, one bar per client and transport.
func chart(samples []sample, clients []string, modes []bool, path string) error {
	colors := []color.Color{color.RGBA{R: 66, G: 133, B: 244, A: 255}, color.RGBA{R: 219, G: 68, B: 55, A: 255}}
	panel := func(title, ylabel string, sc string, value func(sample) float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.Y.Label.Text = ylabel
		w := vg.Points(14)
		top := 0.0
		for i, tls := range modes {
			vals := make(plotter.Values, len(clients))
			for j, c := range clients {
				vals[j] = median(pick(samples, c, tls, sc), value)
				top = max(top, vals[j])
			}
			bars, err := plotter.NewBarChart(vals, w)
			if err != nil {
				return nil, err
			}
			bars.Color = colors[i%len(colors)]
			bars.LineStyle.Width = 0
			bars.Offset = w * vg.Length(float64(i)-float64(len(modes)-1)/2)
			p.Add(bars)
			p.Legend.Add(tlsName(tls), bars)
		}
		p.Legend.Top = true
		p.Y.Min, p.Y.Max = 0, top*1.2 // room for the legend above the bars
		p.NominalX(clients...)
		return p, nil
	}
	large, err := panel("One large file", "MB/s", scLarge, func(s sample) float64 { return float64(s.Bytes) / s.Seconds / 1e6 })
	if err != nil {
		return err
	}
	small, err := panel("Small files, parallel", "files/s", scSmall, func(s sample) float64 { return float64(s.Files) / s.Seconds })
	if err != nil {
		return err
	}
	img := vgimg.New(vg.Points(1000), vg.Points(380))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(12), PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6)}
	canvases := plot.Align([][]*plot.Plot{{large, small}}, tiles, dc)
	large.Draw(canvases[0][0])
	small.Draw(canvases[0][1])
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
