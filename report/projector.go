package report

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/image/draw"

	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/internal/fsutil"
)

// The files TensorBoard's embedding projector reads from a run folder (the
// plugin looks for ProjectorConfig in every folder that holds event files;
// the paths inside it are relative to it).
const (
	ProjectorConfig   = "projector_config.pbtxt"
	ProjectorDir      = "projector"
	projectorFeatures = "features.tsv" // one row per image, values tab-separated
	projectorMetadata = "metadata.tsv" // a header row, then one row per image
	projectorSprite   = "sprite.png"   // the thumbnails, row-major in a square grid
	// MaxSpriteSide is the projector's largest sprite (8192×8192 pixels).
	MaxSpriteSide = 8192
)

// ProjectorSample picks n test images (seeded, in increasing order): the
// same ones at every evaluation of a run, so that projections compare.
func ProjectorSample(total, n int, seed int64) []int {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e0c7))
	picks := rng.Perm(total)[:min(n, total)]
	slices.Sort(picks)
	return picks
}

// writeProjector writes the projector's files for a sample of the test
// split (o.ProjectorImages images) into dir: their features, their labels (and class
// names, and their rows in the test split) as metadata, a sprite of their thumbnails, and the config naming
// them. It returns the files written.
func writeProjector(dir string, o Options, test eval.Split) ([]string, error) {
	n := min(o.ProjectorImages, len(test.Labels))
	if n == 0 {
		return nil, nil
	}
	picks := ProjectorSample(len(test.Labels), n, o.Seed)
	images, err := test.ImagesOf(picks)
	if err != nil {
		return nil, fmt.Errorf("projector sprite: %w", err)
	}
	top, dir := dir, filepath.Join(dir, ProjectorDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	f := test.Features
	features := func(w io.Writer) error {
		b := bufio.NewWriter(w)
		for _, p := range picks {
			for j, v := range f.Data[p*f.Dim : (p+1)*f.Dim] {
				if j > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
			}
			b.WriteByte('\n')
		}
		return b.Flush()
	}
	var meta bytes.Buffer
	// Several columns: the header row is required. index is the image's row
	// in the test split (features_test.npy, labels_test.npy).
	meta.WriteString("class\tlabel\tindex\n")
	for _, p := range picks {
		l := test.Labels[p]
		fmt.Fprintf(&meta, "%s\t%d\t%d\n", className(o.ClassNames, l), l, p)
	}
	sprite, side, err := spritePNG(picks, images, test.H, test.W, test.C)
	if err != nil {
		return nil, err
	}
	files := []string{filepath.Join(dir, projectorFeatures), filepath.Join(dir, projectorMetadata), filepath.Join(dir, projectorSprite)}
	if err := fsutil.WriteAtomic(files[0], features); err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	if err := fsutil.WriteFileAtomic(files[1], meta.Bytes()); err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	if err := fsutil.WriteFileAtomic(files[2], sprite); err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	// The config last: the plugin never sees it name files not yet written.
	cfg := fmt.Sprintf(`embeddings {
  tensor_name: "z_mean (%d test images)"
  tensor_path: "%s/%s"
  metadata_path: "%s/%s"
  sprite {
    image_path: "%s/%s"
    single_image_dim: %d
    single_image_dim: %d
  }
}
`, n, ProjectorDir, projectorFeatures, ProjectorDir, projectorMetadata, ProjectorDir, projectorSprite, side[0], side[1])
	p := filepath.Join(top, ProjectorConfig)
	if err := fsutil.WriteFileAtomic(p, []byte(cfg)); err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	return append(files, p), nil
}

// className is the name of label l (tabs and newlines, which would break the
// metadata's rows, become spaces), or the label itself.
func className(names []string, l int) string {
	if l < 0 || l >= len(names) || names[l] == "" {
		return strconv.Itoa(l)
	}
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(names[l])
}

// spritePNG lays the thumbnails of picks out row by row in a square grid, as
// the projector expects, each scaled down (if needed) so that the sprite fits
// MaxSpriteSide; it returns the PNG and one thumbnail's width and height.
func spritePNG(picks []int, images map[int][]byte, h, w, c int) ([]byte, [2]int, error) {
	cols := int(math.Ceil(math.Sqrt(float64(len(picks)))))
	scale := min(1, float64(MaxSpriteSide)/float64(cols*max(h, w)))
	tw, th := max(1, int(float64(w)*scale)), max(1, int(float64(h)*scale))
	sprite := image.NewRGBA(image.Rect(0, 0, cols*tw, cols*th))
	src := image.NewRGBA(image.Rect(0, 0, w, h))
	for i, p := range picks {
		px, ok := images[p]
		if !ok || len(px) != h*w*c {
			px = make([]byte, h*w*c) // an image that could not be read again: black
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				o := (y*w + x) * c
				r, g, b := px[o], px[o], px[o]
				if c == 3 {
					g, b = px[o+1], px[o+2]
				}
				src.SetRGBA(x, y, color.RGBA{r, g, b, 255})
			}
		}
		x0, y0 := (i%cols)*tw, (i/cols)*th
		if tw == w && th == h {
			draw.Copy(sprite, image.Pt(x0, y0), src, src.Bounds(), draw.Src, nil)
		} else {
			draw.ApproxBiLinear.Scale(sprite, image.Rect(x0, y0, x0+tw, y0+th), src, src.Bounds(), draw.Src, nil)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, sprite); err != nil {
		return nil, [2]int{}, fmt.Errorf("projector sprite: %w", err)
	}
	return buf.Bytes(), [2]int{tw, th}, nil
}
