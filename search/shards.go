package search

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/infomax/infomax/internal/npy"
	"github.com/infomax/infomax/knn"
)

// ManifestFile names the manifest of a sharded index: the folder the batch
// embedding pipeline (embed/) writes, with NAME.npy (float32 [n, dim]) and
// NAME.paths.txt for every shard.
const ManifestFile = "manifest.json"

// Manifest says which model made a sharded index's features and lists its
// shards.
type Manifest struct {
	Run         string   `json:"run"`          // the run folder, absolute
	RunRelative string   `json:"run_relative"` // and relative to the sharded folder (see Index.Run)
	ConfigHash  string   `json:"config_hash"`
	Step        int64    `json:"step"`
	Dim         int      `json:"dim"`
	Images      int      `json:"images"`
	Bad         int      `json:"bad"` // images left out (listed in bad.txt)
	Shards      []string `json:"shards"`
	Inputs      []string `json:"inputs"`
}

// loadShards reads a sharded index folder into one Index, checking every
// shard against the manifest.
func loadShards(dir string) (*Index, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.Dim <= 0 {
		return nil, fmt.Errorf("%s: feature dimension %d", filepath.Join(dir, ManifestFile), m.Dim)
	}
	ix := &Index{Run: FindRun(filepath.Join(dir, ManifestFile), m.Run, m.RunRelative), ConfigHash: m.ConfigHash, Step: m.Step, Features: knn.Features{Dim: m.Dim}}
	for _, s := range m.Shards {
		if s != filepath.Base(s) {
			return nil, fmt.Errorf("%s: shard %q is not a file of the folder", dir, s)
		}
		feats, n, err := npy.ReadFloat32Rows(filepath.Join(dir, s+".npy"), m.Dim)
		if err != nil {
			return nil, err
		}
		names, err := os.ReadFile(filepath.Join(dir, s+".paths.txt"))
		if err != nil {
			return nil, err
		}
		paths := strings.Split(strings.TrimSuffix(string(names), "\n"), "\n")
		if n == 0 {
			paths = nil
		}
		if len(paths) != n {
			return nil, fmt.Errorf("%s: %d paths for %d feature rows", filepath.Join(dir, s+".paths.txt"), len(paths), n)
		}
		ix.Paths = append(ix.Paths, paths...)
		ix.Features.Data = append(ix.Features.Data, feats...)
	}
	if len(ix.Paths) != m.Images {
		return nil, fmt.Errorf("%s: the manifest says %d images, the shards hold %d", dir, m.Images, len(ix.Paths))
	}
	return ix, nil
}
