package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/internal/fixture/emulators"
)

func TestRoundTripThroughEmulators(t *testing.T) {
	emulators.Start(t, "bucket")
	ctx := context.Background()
	for _, base := range []string{"s3://bucket/a", "gs://bucket/a", t.TempDir()} {
		p := store.Join(base, "b", "c.bin")
		want := bytes.Repeat([]byte("infomax"), 1000)
		if err := store.WriteFile(ctx, p, want); err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
		got, err := store.ReadFile(ctx, p, 1<<20)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %s: %d bytes, %v", p, len(got), err)
		}
		if _, err := store.ReadFile(ctx, p, 100); !errors.Is(err, store.ErrTooLarge) {
			t.Errorf("read %s within 100 bytes: %v, want ErrTooLarge", p, err)
		}
		if _, err := store.ReadFile(ctx, store.Join(base, "missing"), 100); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("read a missing object of %s: %v, want ErrNotExist", base, err)
		}
	}
}
