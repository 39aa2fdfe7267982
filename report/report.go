// Package report writes an evaluation's files: report.json and .md, grids, features, plots.
//
// Package report writes what an evaluation found into its folder (a run
// folder, or where `runner eval --out` points): report.json and report.md,
// the retrieval grids, the features as .npy, TensorBoard's embedding
// projector, and the loss and kNN curves as PNG. Package eval computes the
// figures and writes nothing; this package computes none.
package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/internal/npy"
	"github.com/infomax/infomax/internal/store"
)

// The files of a report, in its folder.
const (
	JSONFile     = "report.json"
	MarkdownFile = "report.md"
)

// Options say what Write writes besides report.json and report.md.
type Options struct {
	// ProjectorImages test images (a seeded sample, Seed) go to
	// TensorBoard's embedding projector (0: none); ClassNames label them.
	ProjectorImages int
	ClassNames      []string
	Seed            int64
}

// Write writes an evaluation of a run into dir, a local folder: the
// retrieval grids of rep.Retrievals, the features and labels of both splits
// as .npy, the projector's files, then report.json and report.md, each file
// whole or not at all. It fills rep.Files with what it wrote.
func Write(ctx context.Context, dir string, rep *eval.Report, train, test eval.Split, o Options) error {
	var err error
	if rep.Files.Grids, err = writeGrids(dir, rep.Retrievals, train, test); err != nil {
		return err
	}
	if rep.Files.Features, err = writeFeatures(dir, train, test); err != nil {
		return err
	}
	if rep.Files.Projector, err = writeProjector(dir, o, test); err != nil {
		return err
	}
	return WriteReport(ctx, dir, rep)
}

// WriteReport writes report.json and report.md into dir, a local folder or
// an object-store prefix.
func WriteReport(ctx context.Context, dir string, rep *eval.Report) error {
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := store.WriteFile(ctx, store.Join(dir, JSONFile), append(raw, '\n')); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := store.WriteFile(ctx, store.Join(dir, MarkdownFile), []byte(rep.Markdown())); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// Print writes the report's table and where its files are.
func Print(w io.Writer, rep *eval.Report, dir string) {
	fmt.Fprint(w, rep.Markdown())
	fmt.Fprintf(w, "report: %s, %s, %d grids, features as .npy (encode %.1fs at %.0f images/s, kNN %.1fs)\n",
		filepath.Join(dir, JSONFile), MarkdownFile, len(rep.Files.Grids), rep.EncodeSec, rep.ImagesPerSec, rep.KNNSec)
}

// GridScale is how many times a grid enlarges images of height h: to at
// least 64 pixels.
func GridScale(h int) int { return max(1, (64+h-1)/h) }

// writeGrids draws the retrieval grids: each retrieval's test queries, a row
// each, with their nearest training images.
func writeGrids(dir string, rets []eval.Retrieval, train, test eval.Split) ([]string, error) {
	var want []int
	for _, r := range rets {
		want = append(want, r.Neighbours...)
	}
	if len(rets) == 0 {
		return nil, nil
	}
	queryImages, err := test.ImagesOf(rets[0].Queries)
	if err != nil {
		return nil, fmt.Errorf("retrieval grids: %w", err)
	}
	trainImages, err := train.ImagesOf(want)
	if err != nil {
		return nil, fmt.Errorf("retrieval grids: %w", err)
	}
	blank := make([]byte, train.H*train.W*train.C) // an image that could not be read again
	img := func(m map[int][]byte, i int) []byte {
		if px, ok := m[i]; ok {
			return px
		}
		return blank
	}
	var files []string
	for _, r := range rets {
		rows := make([]GridRow, len(r.Queries))
		for i, p := range r.Queries {
			rows[i].Query = img(queryImages, p)
			for j := 0; j < r.K; j++ {
				rows[i].Neighbours = append(rows[i].Neighbours, img(trainImages, r.Neighbours[i*r.K+j]))
			}
		}
		p := filepath.Join(dir, "retrieval_"+string(r.Metric)+".png")
		if err := WriteGrid(p, rows, train.H, train.W, train.C, GridScale(train.H)); err != nil {
			return nil, err
		}
		files = append(files, p)
	}
	return files, nil
}

// writeFeatures writes features_{train,test}.npy and labels_{train,test}.npy.
func writeFeatures(dir string, train, test eval.Split) ([]string, error) {
	var files []string
	for _, f := range []struct {
		name  string
		split eval.Split
	}{{"train", train}, {"test", test}} {
		p := filepath.Join(dir, "features_"+f.name+".npy")
		if err := npy.Write(p, f.split.Features.Data, f.split.Features.Len(), f.split.Features.Dim); err != nil {
			return nil, err
		}
		labels := make([]int32, len(f.split.Labels))
		for i, l := range f.split.Labels {
			labels[i] = int32(l)
		}
		lp := filepath.Join(dir, "labels_"+f.name+".npy")
		if err := npy.Write(lp, labels, len(labels)); err != nil {
			return nil, err
		}
		files = append(files, p, lp)
	}
	return files, nil
}
