package report

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestGridLayout(t *testing.T) {
	px := func(v byte) []byte {
		b := make([]byte, 4*4*3)
		for i := range b {
			b[i] = v
		}
		return b
	}
	rows := []GridRow{{Query: px(10), Neighbours: [][]byte{px(20), px(30)}}, {Query: px(40), Neighbours: [][]byte{px(50), px(60)}}}
	p := filepath.Join(t.TempDir(), "g.png")
	if err := WriteGrid(p, rows, 4, 4, 3, 3); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(p)
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 3 cells of 12 px, one 8 px gap after the query and one 2 px gap; 2 rows of 12 with a 2 px gap.
	if b := img.Bounds(); b.Dx() != 3*12+8+2 || b.Dy() != 2*12+2 {
		t.Fatalf("grid is %v", b)
	}
	at := func(x, y int) uint32 { r, _, _, _ := img.At(x, y).RGBA(); return r >> 8 }
	if at(0, 0) != 10 || at(11, 11) != 10 || at(12+8, 0) != 20 || at(12+8+12+2, 14) != 60 || at(12, 0) != 255 {
		t.Errorf("cells: %d %d %d %d gap %d", at(0, 0), at(11, 11), at(20, 0), at(34, 14), at(12, 0))
	}
}
