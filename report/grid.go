package report

import (
	"bytes"
	"image"
	"image/color"
	"image/png"

	"github.com/infomax/infomax/internal/fsutil"
)

// GridRow is one row of a retrieval grid: a query image, then its neighbours.
type GridRow struct {
	Query      []byte
	Neighbours [][]byte
}

// WriteGrid draws rows of packed uint8 images (h×w×c, c = 1 or 3) as a PNG,
// like the seed's figures: one query per row followed by its neighbours,
// each image upscaled by scale with nearest-neighbour sampling so small images
// stay sharp, a light gap between images and a wider one after the query.
func WriteGrid(path string, rows []GridRow, h, w, c, scale int) error {
	if len(rows) == 0 {
		return nil
	}
	const gap, queryGap = 2, 8
	cols := 1 + len(rows[0].Neighbours)
	cw, ch := w*scale, h*scale
	W := cols*cw + (cols-2)*gap + queryGap
	H := len(rows)*ch + (len(rows)-1)*gap
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	put := func(px []byte, x0, y0 int) {
		for y := 0; y < ch; y++ {
			for x := 0; x < cw; x++ {
				o := ((y/scale)*w + x/scale) * c
				r, g, b := px[o], px[o], px[o]
				if c == 3 {
					g, b = px[o+1], px[o+2]
				}
				img.SetRGBA(x0+x, y0+y, color.RGBA{r, g, b, 255})
			}
		}
	}
	for r, row := range rows {
		y0 := r * (ch + gap)
		put(row.Query, 0, y0)
		for j, nb := range row.Neighbours {
			put(nb, cw+queryGap+j*(cw+gap), y0)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, buf.Bytes())
}
