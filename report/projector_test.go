package report

import (
	"bytes"
	"image/png"
	"testing"
)

// A sprite of many large images is scaled down to the projector's largest
// sprite, whole thumbnails in a square grid; small ones are copied as they are.
func TestSpriteFitsTheProjector(t *testing.T) {
	for _, c := range []struct{ n, side, want int }{{10000, 100, 81}, {50, 28, 28}, {3, 5000, 4096}} {
		picks := make([]int, c.n)
		images := map[int][]byte{}
		for i := range picks {
			picks[i] = i
		}
		px := make([]byte, c.side*c.side*3)
		for i := range px {
			px[i] = byte(i % 251)
		}
		images[0] = px
		raw, dim, err := spritePNG(picks, images, c.side, c.side, 3)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		cols := 1
		for cols*cols < c.n {
			cols++
		}
		b := img.Bounds()
		if dim != [2]int{c.want, c.want} || b.Dx() != cols*c.want || b.Dy() != cols*c.want || b.Dx() > MaxSpriteSide {
			t.Errorf("%d images of %d²: thumbnails %v, sprite %v; want %d² thumbnails in %d columns", c.n, c.side, dim, b, c.want, cols)
		}
		if c.side == c.want { // copied: the first thumbnail is the image itself
			r, g, bl, _ := img.At(1, 0).RGBA()
			if byte(r>>8) != px[3] || byte(g>>8) != px[4] || byte(bl>>8) != px[5] {
				t.Errorf("pixel (1, 0) of the sprite is not the image's")
			}
		}
	}
}

func TestClassNameKeepsMetadataRows(t *testing.T) {
	names := []string{"cat", "tab\tand\nnewline", ""}
	for l, want := range map[int]string{0: "cat", 1: "tab and newline", 2: "2", 7: "7", -1: "-1"} {
		if got := className(names, l); got != want {
			t.Errorf("className(%d) = %q, want %q", l, got, want)
		}
	}
}
