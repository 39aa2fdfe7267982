package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/internal/store"
)

// Remote is a run folder in an object store (s3://bucket/prefix,
// gs://bucket/prefix) that trains through a local work folder, a cache: the
// steps and checkpoint saves happen there as for a local run, and a
// goroutine uploads beside them, so that no step waits for the network.
//
// The bucket is the run folder; the work folder can be lost at any moment.
// Its order makes that safe: config.yaml and model/ go first; a
// checkpoint's files are uploaded and each verified (its size, and the
// checksum the store reports, against the file) before its manifest
// (checkpoints/ckpt-N.sums.json: the checkpoint's state, its files' sizes
// and CRC32C) and then latest.json, one object, name it; checkpoints that
// latest.json no longer keeps are deleted after it. metrics.jsonl and the
// TensorBoard events go with every checkpoint, and everything else (plots,
// the report) when the run ends. An upload that fails is tried again with
// backoff; one that fails for good stops the run at its next checkpoint,
// with the bucket's last complete checkpoint intact.
type Remote struct {
	URL   string // the run folder, in its store
	Local string // the work folder
	out   io.Writer
	ctx   context.Context // the uploads' (not cancelled by Ctrl-C: a stopped run still uploads its last checkpoint)

	mu       sync.Mutex
	wake     chan struct{}
	pending  *upload // the newest checkpoint not yet being uploaded
	started  bool
	closing  bool
	err      error // the first upload that failed for good
	done     chan struct{}
	inBucket []string          // checkpoints complete in the bucket, oldest first
	stamps   map[string]stamp  // files uploaded as they are now
	uploaded *checkpoint.State // the newest checkpoint complete in the bucket
	repoint  *checkpoint.State // a checkpoint pulled instead of a damaged latest, for latest.json to name again
	staged   int               // staging folders made
}

// upload is one checkpoint to upload: its state and its files, linked
// into a staging folder (the run may prune them meanwhile).
type upload struct {
	state  checkpoint.State
	staged string
	files  []string // names in staged
}

type stamp struct {
	size int64
	mod  time.Time
}

// Tries is how many times each upload is attempted before the run stops
// (with exponential backoff between attempts, from half a second).
const Tries = 5

// sums is a checkpoint's manifest in the bucket.
type sums struct {
	State checkpoint.State `json:"state"`
	Files []fileSum        `json:"files"`
}

type fileSum struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

// sumsName is the manifest object of a checkpoint prefix.
func sumsName(prefix string) string { return prefix + ".sums.json" }

// workDir is the local work folder of a run folder in a store:
// $INFOMAX_CACHE/runs/train-<key>, the key a hash of the URL.
func workDir(url string) (string, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(url))
	return filepath.Join(root, "train-"+hex.EncodeToString(sum[:10])), nil
}

// pulledMark is the file of a work folder that holds the latest.json it
// was pulled from.
const pulledMark = ".pulled"

// OpenRemote prepares to train the run folder url: it checks that the
// store takes writes there (before any work, with a message that says what
// to check), and gives the work folder: for a new run an empty one, and
// with resume one holding the bucket's run (Pull). A new run refuses a url
// that holds a checkpoint already. Uploads start with Start.
func OpenRemote(ctx context.Context, url string, resume bool, out io.Writer) (*Remote, error) {
	url = strings.TrimSuffix(url, "/")
	if err := checkWritable(ctx, url); err != nil {
		return nil, err
	}
	m := &Remote{URL: url, out: out, ctx: context.WithoutCancel(ctx), wake: make(chan struct{}, 1), done: make(chan struct{}), stamps: map[string]stamp{}}
	raw, err := store.ReadFile(ctx, store.Join(url, CheckpointsDir, checkpoint.LatestFile), maxLatest)
	switch {
	case err == nil && !resume:
		var st checkpoint.State
		json.Unmarshal(raw, &st)
		return nil, fmt.Errorf("%s already has a checkpoint at step %d: pass --resume to continue it, or choose another --run-dir", url, st.Step)
	case err != nil && !errors.Is(err, store.ErrNotExist):
		return nil, fmt.Errorf("run %s: %w", url, err)
	case resume:
		if m.Local, err = Pull(ctx, url, out); err != nil {
			return nil, err
		}
		var st checkpoint.State
		if json.Unmarshal(raw, &st) == nil {
			m.inBucket, m.uploaded = st.Kept, &st
			// Resumed from an older checkpoint than latest.json names (that
			// one is damaged): the bucket's latest.json is pointed back at
			// it first, and the damaged one deleted.
			if own, err := (checkpoint.Dir{Path: filepath.Join(m.Local, CheckpointsDir)}).Latest(); err == nil && own.Prefix != st.Prefix {
				m.repoint = own
				m.inBucket = slices.DeleteFunc(slices.Clone(st.Kept), func(p string) bool { return p == st.Prefix })
			}
		}
	default:
		if m.Local, err = workDir(url); err != nil {
			return nil, err
		}
		if err := os.RemoveAll(m.Local); err != nil {
			return nil, fmt.Errorf("run cache: %w", err)
		}
	}
	os.RemoveAll(filepath.Join(m.Local, stagingDir))
	return m, nil
}

const maxLatest = 1 << 20

// checkWritable writes and removes a small object in url.
func checkWritable(ctx context.Context, url string) error {
	probe := store.Join(url, fmt.Sprintf(".write-check-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := store.WriteFile(ctx, probe, []byte("infomax\n")); err != nil {
		return fmt.Errorf("cannot write the run folder %s: %w\n"+
			"training keeps its checkpoints there: check that the bucket exists and that these credentials may write to it "+
			"(S3: the AWS SDK's chain: AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws; "+
			"GCS: GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`)", url, err)
	}
	if err := store.Remove(ctx, probe); err != nil {
		return fmt.Errorf("the run folder %s takes writes but not deletes (%w): training deletes the checkpoints it no longer keeps", url, err)
	}
	return nil
}

// Pull makes the work folder of the run folder url hold what resuming it
// needs: config.yaml, model/, metrics.jsonl and the newest complete
// checkpoint, each checked against the checkpoint's manifest. When the
// checkpoint latest.json names is incomplete or corrupt (a truncated
// object, one missing), it says so and takes the newest complete one it
// keeps; when there is none, the error names what is wrong with each. A
// work folder already pulled from the same latest.json is kept as it is.
func Pull(ctx context.Context, url string, out io.Writer) (string, error) {
	url = strings.TrimSuffix(url, "/")
	local, err := workDir(url)
	if err != nil {
		return "", err
	}
	latestURL := store.Join(url, CheckpointsDir, checkpoint.LatestFile)
	raw, err := store.ReadFile(ctx, latestURL, maxLatest)
	if errors.Is(err, store.ErrNotExist) {
		// A run stopped before its first checkpoint: its config only.
		if err := os.RemoveAll(local); err != nil {
			return "", err
		}
		if err := download(ctx, store.Join(url, ConfigFile), filepath.Join(local, ConfigFile)); err != nil {
			if errors.Is(err, store.ErrNotExist) {
				return "", fmt.Errorf("--resume: %s holds no run to continue (no %s): start it with --config FILE --run-dir %s", url, ConfigFile, url)
			}
			return "", err
		}
		return local, nil
	}
	if err != nil {
		return "", fmt.Errorf("run %s: %w", url, err)
	}
	if mark, err := os.ReadFile(filepath.Join(local, pulledMark)); err == nil && string(mark) == string(raw) {
		return local, nil
	}
	var st checkpoint.State
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("%s: %w: not a latest.json this project wrote", latestURL, err)
	}
	candidates := []string{st.Prefix}
	for _, p := range slices.Backward(st.Kept) {
		if p != st.Prefix {
			candidates = append(candidates, p)
		}
	}
	var problems []error
	for _, prefix := range candidates {
		tmp, err := pullCheckpoint(ctx, url, local, prefix, &st)
		if err != nil {
			fmt.Fprintf(out, "train: --resume: cannot resume from %s: %v\n", store.Join(url, CheckpointsDir, prefix), err)
			problems = append(problems, fmt.Errorf("%s: %w", prefix, err))
			continue
		}
		defer os.RemoveAll(tmp)
		if err := os.WriteFile(filepath.Join(tmp, pulledMark), raw, 0o644); err != nil {
			return "", err
		}
		if err := os.RemoveAll(local); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, local); err != nil {
			return "", err
		}
		if prefix != st.Prefix {
			fmt.Fprintf(out, "train: --resume: resuming from %s (step %d), the newest complete checkpoint %s keeps\n", prefix, stepOf(prefix), url)
		}
		return local, nil
	}
	return "", fmt.Errorf("--resume: %s has no complete checkpoint to resume from: %w", url, errors.Join(problems...))
}

func stepOf(prefix string) int64 {
	s, _ := checkpoint.ParsePrefix(prefix)
	return s
}

// pullCheckpoint downloads the run with checkpoint prefix into a new
// folder beside local, checking the checkpoint's files against its
// manifest (the latest one may lack a manifest when the folder was copied
// into the bucket by other means: then only its .index is required).
func pullCheckpoint(ctx context.Context, url, local, prefix string, latest *checkpoint.State) (string, error) {
	ckpts := store.Join(url, CheckpointsDir)
	state := *latest
	man, err := readSums(ctx, store.Join(ckpts, sumsName(prefix)))
	switch {
	case err == nil:
		state = man.State
	case errors.Is(err, store.ErrNotExist) && prefix == latest.Prefix:
		man = nil
	default:
		return "", err
	}
	if state.Prefix != prefix {
		return "", fmt.Errorf("its manifest is of %s", state.Prefix)
	}
	var names []string
	if man != nil {
		if err := man.check(ctx, ckpts); err != nil {
			return "", err
		}
		for _, f := range man.Files {
			names = append(names, f.Name)
		}
	} else {
		m, err := store.List(ctx, store.Join(ckpts, prefix+".*"))
		if err != nil {
			return "", err
		}
		for _, u := range m {
			names = append(names, store.Base(u))
		}
		if !slices.Contains(names, prefix+".index") {
			return "", fmt.Errorf("%s is missing: latest.json points at a checkpoint that is not there", store.Join(ckpts, prefix+".index"))
		}
	}
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(local), filepath.Base(local)+".pull-")
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	files, err := runObjects(ctx, url)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		files = append(files, CheckpointsDir+"/"+n)
	}
	for _, f := range files {
		if err := download(ctx, store.Join(url, f), filepath.Join(tmp, filepath.FromSlash(f))); err != nil {
			return "", err
		}
	}
	if man != nil {
		if err := man.checkLocal(ckpts, filepath.Join(tmp, CheckpointsDir)); err != nil {
			return "", err
		}
	}
	raw, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, CheckpointsDir, checkpoint.LatestFile), append(raw, '\n'), 0o644); err != nil {
		return "", err
	}
	ok = true
	return tmp, nil
}

func readSums(ctx context.Context, url string) (*sums, error) {
	raw, err := store.ReadFile(ctx, url, maxLatest)
	if err != nil {
		return nil, err
	}
	var s sums
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	for _, f := range s.Files {
		if f.Name != filepath.Base(f.Name) || checkpoint.PrefixOf(f.Name) != s.State.Prefix {
			return nil, fmt.Errorf("%s: names %q, not a file of checkpoint %s", url, f.Name, s.State.Prefix)
		}
	}
	return &s, nil
}

// check checks that the checkpoint's objects in ckpts are there with the
// manifest's sizes (HEAD requests: a truncated or missing object shows
// before anything is downloaded).
func (s *sums) check(ctx context.Context, ckpts string) error {
	if len(s.Files) == 0 || !slices.ContainsFunc(s.Files, func(f fileSum) bool { return f.Name == s.State.Prefix+".index" }) {
		return fmt.Errorf("%s: lists no %s.index", store.Join(ckpts, sumsName(s.State.Prefix)), s.State.Prefix)
	}
	for _, f := range s.Files {
		url := store.Join(ckpts, f.Name)
		o, err := store.Stat(ctx, url)
		if errors.Is(err, store.ErrNotExist) {
			return fmt.Errorf("%s is missing (its manifest %s lists it): an incomplete or damaged checkpoint", url, sumsName(s.State.Prefix))
		}
		if err != nil {
			return err
		}
		if o.Size != f.Size {
			return fmt.Errorf("%s: %d bytes, its manifest %s says %d: truncated or overwritten", url, o.Size, sumsName(s.State.Prefix), f.Size)
		}
	}
	return nil
}

// checkLocal checks the checkpoint's files downloaded into dir against
// the manifest's CRC32C.
func (s *sums) checkLocal(ckpts, dir string) error {
	for _, f := range s.Files {
		sum, n, err := crc32cOf(filepath.Join(dir, f.Name))
		if err != nil {
			return err
		}
		if sum != f.CRC32C || n != f.Size {
			return fmt.Errorf("%s: its bytes differ from its manifest's CRC32C: corrupt", store.Join(ckpts, f.Name))
		}
	}
	return nil
}

func crc32cOf(path string) (uint32, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.Copy(h, f)
	return h.Sum32(), n, err
}

// stagingDir is where a checkpoint's files wait for their upload.
const stagingDir = ".upload"

// Start starts the uploads: config.yaml and model/ first, and a
// checkpoint pulled in place of a damaged latest one.
func (m *Remote) Start() error {
	m.mu.Lock()
	m.started = true
	m.mu.Unlock()
	go m.loop()
	if m.repoint != nil {
		return m.Checkpoint(m.repoint)
	}
	return nil
}

// Checkpoint queues the upload of a checkpoint just saved in the work
// folder (replacing one queued and not yet begun: the bucket gets the
// newest). It returns the error of an upload that failed for good, which
// stops the run.
func (m *Remote) Checkpoint(st *checkpoint.State) error {
	if err := m.Err(); err != nil {
		return err
	}
	// A folder per call: the same step saved twice (a save, then Ctrl-C at
	// that step) must not share one with an upload in flight.
	m.mu.Lock()
	m.staged++
	staged := filepath.Join(m.Local, stagingDir, fmt.Sprintf("%s-%d", st.Prefix, m.staged))
	m.mu.Unlock()
	if err := os.MkdirAll(staged, 0o755); err != nil {
		return err
	}
	src := filepath.Join(m.Local, CheckpointsDir)
	paths, err := filepath.Glob(filepath.Join(src, st.Prefix+".*"))
	if err != nil {
		return err
	}
	u := &upload{state: *st, staged: staged}
	for _, p := range paths {
		name := filepath.Base(p)
		// A hard link: the saver writes new files, never into old ones.
		if err := os.Link(p, filepath.Join(staged, name)); err != nil {
			return fmt.Errorf("staging %s for its upload: %w", p, err)
		}
		u.files = append(u.files, name)
	}
	m.mu.Lock()
	if old := m.pending; old != nil {
		os.RemoveAll(old.staged)
	}
	m.pending = u
	m.mu.Unlock()
	m.signal()
	return nil
}

func (m *Remote) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Err is the error of an upload that failed for good, if one has.
func (m *Remote) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close waits for the queued checkpoint's upload, then uploads every file
// of the work folder not uploaded as it is now (the plots, the report,
// the last metrics), and returns the first upload error.
func (m *Remote) Close() error {
	m.mu.Lock()
	started := m.started
	m.closing = true
	m.mu.Unlock()
	if !started {
		return nil
	}
	m.signal()
	<-m.done
	if err := m.Err(); err != nil {
		return err
	}
	if err := m.syncAll(); err != nil {
		return m.fail(err)
	}
	return nil
}

// Uploaded is the newest checkpoint complete in the bucket (nil: none).
func (m *Remote) Uploaded() *checkpoint.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.uploaded
}

func (m *Remote) fail(err error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		where := "no checkpoint of it is complete there yet"
		if m.uploaded != nil {
			where = fmt.Sprintf("its checkpoint of step %d is complete there", m.uploaded.Step)
		}
		m.err = fmt.Errorf("uploading the run to %s: %w\n(%s; the work folder %s holds the rest. "+
			"When the store answers again, `runner train --run-dir %s --resume` continues from the bucket)", m.URL, err, where, m.Local, m.URL)
	}
	return m.err
}

func (m *Remote) loop() {
	defer close(m.done)
	if err := m.syncFiles(func(rel string) bool { return rel == ConfigFile || strings.HasPrefix(rel, ModelDir+"/") }); err != nil {
		m.fail(err)
	}
	for {
		m.mu.Lock()
		for m.pending == nil && !m.closing {
			m.mu.Unlock()
			<-m.wake
			m.mu.Lock()
		}
		job, failed := m.pending, m.err != nil
		m.pending = nil
		m.mu.Unlock()
		if job == nil {
			return // closing, nothing queued
		}
		if !failed {
			if err := m.uploadCheckpoint(job); err != nil {
				m.fail(err)
			}
		}
		os.RemoveAll(job.staged)
	}
}

// retry runs op until it succeeds, at most Tries times, with exponential
// backoff; the error says how often it was tried.
func (m *Remote) retry(op func() error) error {
	_, err := backoff.Retry(m.ctx, func() (struct{}, error) { return struct{}{}, op() },
		backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxTries(Tries))
	if err != nil {
		return fmt.Errorf("%w (tried %d times)", err, Tries)
	}
	return nil
}

// put uploads a local file to url and verifies the object against it.
func (m *Remote) put(local, url string) error {
	return m.retry(func() error {
		err := store.Write(m.ctx, url, func(w io.Writer) error {
			f, err := os.Open(local)
			if err != nil {
				return backoff.Permanent(err)
			}
			defer f.Close()
			_, err = io.Copy(w, f)
			return err
		})
		if err != nil {
			return err
		}
		return store.Verify(m.ctx, url, local)
	})
}

// putBytes uploads b to url and checks the object's size.
func (m *Remote) putBytes(b []byte, url string) error {
	return m.retry(func() error {
		if err := store.WriteFile(m.ctx, url, b); err != nil {
			return err
		}
		o, err := store.Stat(m.ctx, url)
		if err != nil {
			return err
		}
		if o.Size != int64(len(b)) {
			return fmt.Errorf("%s: %d bytes in the store, %d uploaded", url, o.Size, len(b))
		}
		return nil
	})
}

// uploadCheckpoint uploads one checkpoint in the order that keeps the
// bucket's latest.json naming a complete one.
func (m *Remote) uploadCheckpoint(u *upload) error {
	ckpts := store.Join(m.URL, CheckpointsDir)
	man := sums{State: u.state}
	for _, name := range u.files {
		local := filepath.Join(u.staged, name)
		url := store.Join(ckpts, name)
		if store.Verify(m.ctx, url, local) == nil {
			// There already (a checkpoint pulled, pointed at again).
		} else if err := m.put(local, url); err != nil {
			return err
		}
		sum, size, err := crc32cOf(local)
		if err != nil {
			return err
		}
		man.Files = append(man.Files, fileSum{Name: name, Size: size, CRC32C: sum})
	}
	// The log as it is now (it holds this step's line; a resume drops
	// lines after its checkpoint).
	if err := m.syncGrowing(); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	if err := m.putBytes(append(raw, '\n'), store.Join(ckpts, sumsName(u.state.Prefix))); err != nil {
		return err
	}
	// latest.json keeps only checkpoints complete in the bucket.
	st := u.state
	st.Kept = slices.DeleteFunc(slices.Clone(st.Kept), func(p string) bool { return p != st.Prefix && !slices.Contains(m.inBucket, p) })
	raw, err = json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := m.putBytes(append(raw, '\n'), store.Join(ckpts, checkpoint.LatestFile)); err != nil {
		return err
	}
	m.mu.Lock()
	m.inBucket, m.uploaded = st.Kept, &st
	m.mu.Unlock()
	// Then the checkpoints it no longer keeps.
	objs, err := store.List(m.ctx, store.Join(ckpts, "ckpt-*"))
	if err != nil {
		return err
	}
	for _, o := range objs {
		if p := checkpoint.PrefixOf(store.Base(o)); p != "" && !slices.Contains(st.Kept, p) {
			if err := m.retry(func() error { return store.Remove(m.ctx, o) }); err != nil {
				return err
			}
		}
	}
	return nil
}

// growing are the files written as the run goes: uploaded as they are at
// each checkpoint, and whole at the end.
func growing(rel string) bool {
	return rel == MetricsFile || strings.HasPrefix(rel, "events.out.tfevents.")
}

// syncGrowing uploads metrics.jsonl and the TensorBoard events as they are.
func (m *Remote) syncGrowing() error {
	entries, err := os.ReadDir(m.Local)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || !growing(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.Local, e.Name()))
		if err != nil {
			return err
		}
		if err := m.putBytes(b, store.Join(m.URL, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// syncAll uploads every file of the work folder but the checkpoints (which
// go as above) and hidden ones (temporary files, the staging folder).
func (m *Remote) syncAll() error {
	return m.syncFiles(func(rel string) bool { return !strings.HasPrefix(rel, CheckpointsDir+"/") })
}

// syncFiles uploads the files of the work folder that want selects and
// that changed since their last upload.
func (m *Remote) syncFiles(want func(rel string) bool) error {
	return filepath.WalkDir(m.Local, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != m.Local {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(m.Local, p)
		rel = filepath.ToSlash(rel)
		if !want(rel) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		s := stamp{fi.Size(), fi.ModTime()}
		if m.stamps[rel] == s {
			return nil
		}
		url := store.Join(m.URL, rel)
		if store.Verify(m.ctx, url, p) != nil { // not there as it is here (a resumed run's model/ is)
			if err := m.put(p, url); err != nil {
				return err
			}
		}
		m.stamps[rel] = s
		return nil
	})
}
