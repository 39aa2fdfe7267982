// Package tboard writes and reads TensorBoard event files from Go.
//
// Package tboard writes TensorBoard event files from Go: Event protos (from
// graft's generated TensorFlow protos) framed as TFRecords, each record
// guarded by masked CRC32C checksums, in events.out.tfevents.* files that
// `tensorboard --logdir runs/` reads.
package tboard

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	summarypb "github.com/wamuir/graft/tensorflow/core/framework/summary_go_proto"
	eventpb "github.com/wamuir/graft/tensorflow/core/util/event_go_proto"
	"google.golang.org/protobuf/proto"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaskedCRC is TFRecord's checksum: CRC32C, rotated and offset so that a CRC
// of data holding CRCs stays well distributed.
func MaskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// Writer appends events to one file. Methods are not safe for concurrent use.
type Writer struct {
	f    *os.File
	w    *bufio.Writer
	Path string
}

// NewWriter starts an event file in dir (created), named as TensorFlow names
// them, with the file_version event first.
func NewWriter(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	now := time.Now()
	path := filepath.Join(dir, fmt.Sprintf("events.out.tfevents.%d.%s.%d", now.Unix(), host, os.Getpid()))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, w: bufio.NewWriter(f), Path: path}
	err = w.write(&eventpb.Event{WallTime: seconds(now), What: &eventpb.Event_FileVersion{FileVersion: "brain.Event:2"}})
	if err != nil {
		f.Close()
		return nil, err
	}
	return w, w.Flush()
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Scalars writes one event with a scalar per tag at step.
func (w *Writer) Scalars(step int64, values map[string]float64) error {
	s := &summarypb.Summary{}
	for tag, v := range values {
		s.Value = append(s.Value, &summarypb.Summary_Value{Tag: tag, Value: &summarypb.Summary_Value_SimpleValue{SimpleValue: float32(v)}})
	}
	return w.summary(step, s)
}

// Image writes an encoded PNG as an image summary at step.
func (w *Writer) Image(step int64, tag string, pngBytes []byte, width, height, channels int) error {
	img := &summarypb.Summary_Image{Height: int32(height), Width: int32(width), Colorspace: int32(channels), EncodedImageString: pngBytes}
	return w.summary(step, &summarypb.Summary{Value: []*summarypb.Summary_Value{{Tag: tag, Value: &summarypb.Summary_Value_Image{Image: img}}}})
}

func (w *Writer) summary(step int64, s *summarypb.Summary) error {
	return w.write(&eventpb.Event{WallTime: seconds(time.Now()), Step: step, What: &eventpb.Event_Summary{Summary: s}})
}

// write frames one event: length, masked CRC of the length, data, masked CRC of the data.
func (w *Writer) write(e *eventpb.Event) error {
	data, err := proto.Marshal(e)
	if err != nil {
		return err
	}
	var head [12]byte
	binary.LittleEndian.PutUint64(head[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(head[8:], MaskedCRC(head[:8]))
	var foot [4]byte
	binary.LittleEndian.PutUint32(foot[:], MaskedCRC(data))
	w.w.Write(head[:])
	w.w.Write(data)
	_, err = w.w.Write(foot[:])
	return err
}

// Flush pushes buffered events to the file, so TensorBoard sees them.
func (w *Writer) Flush() error { return w.w.Flush() }

// Close flushes and closes the file.
func (w *Writer) Close() error {
	err := w.w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadEvents reads every event of a file, checking both CRCs of each record.
func ReadEvents(path string) ([]*eventpb.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	out, err := readEvents(bufio.NewReader(f), fi.Size())
	if err != nil {
		return out, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// readEvents reads the records of an event file of size bytes; a record's
// length is checked against what is left of the file before it is allocated.
func readEvents(r io.Reader, size int64) ([]*eventpb.Event, error) {
	var out []*eventpb.Event
	left := size
	for n := 0; ; n++ {
		var head [12]byte
		if _, err := io.ReadFull(r, head[:]); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return out, fmt.Errorf("record %d: %w", n, err)
		}
		if MaskedCRC(head[:8]) != binary.LittleEndian.Uint32(head[8:]) {
			return out, fmt.Errorf("record %d: length CRC mismatch", n)
		}
		length := binary.LittleEndian.Uint64(head[:8])
		if left -= 16; length > uint64(max(left, 0)) {
			return out, fmt.Errorf("record %d: claims %d bytes, the file holds %d more: truncated or corrupt", n, length, max(left, 0))
		}
		left -= int64(length)
		data := make([]byte, length)
		var foot [4]byte
		if _, err := io.ReadFull(r, data); err != nil {
			return out, fmt.Errorf("record %d: %w", n, err)
		}
		if _, err := io.ReadFull(r, foot[:]); err != nil {
			return out, fmt.Errorf("record %d: %w", n, err)
		}
		if MaskedCRC(data) != binary.LittleEndian.Uint32(foot[:]) {
			return out, fmt.Errorf("record %d: data CRC mismatch", n)
		}
		e := &eventpb.Event{}
		if err := proto.Unmarshal(data, e); err != nil {
			return out, fmt.Errorf("record %d: %w", n, err)
		}
		out = append(out, e)
	}
}
