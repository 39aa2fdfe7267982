package store

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The checksums real stores give and the emulators do not: S3's ETag of a
// multipart upload (MD5 of the parts' MD5s, "-N") and its full-object
// CRC32, each computed here by slicing the bytes as S3 documents it.
func TestVerifyChecksumArithmetic(t *testing.T) {
	b := make([]byte, 2*UploadPartSize+777)
	for i := range b {
		b[i] = byte(i*13 + i>>9)
	}
	local := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(local, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var cat []byte
	for i := 0; i < len(b); i += UploadPartSize {
		s := md5.Sum(b[i:min(i+UploadPartSize, len(b))])
		cat = append(cat, s[:]...)
	}
	s := md5.Sum(cat)
	etag := fmt.Sprintf(`"%s-3"`, hex.EncodeToString(s[:]))
	var c [4]byte
	binary.BigEndian.PutUint32(c[:], crc32.ChecksumIEEE(b))
	crc := base64.StdEncoding.EncodeToString(c[:])
	defer func(old func(context.Context, string) (Object, error)) { stat = old }(stat)
	for _, o := range []Object{
		{Size: int64(len(b)), ETag: etag},
		{Size: int64(len(b)), CRC32: crc, ETag: `"not-this-3"`},
		{Size: int64(len(b)), CRC32C: crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)), HasCRC32C: true},
	} {
		stat = func(context.Context, string) (Object, error) { return o, nil }
		if err := Verify(context.Background(), "s3://b/k", local); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
		bad := o
		bad.ETag = strings.Replace(o.ETag, "-3", "-4", 1)
		bad.CRC32C++
		if o.CRC32 != "" {
			bad.CRC32 = "AAAAAA=="
		}
		stat = func(context.Context, string) (Object, error) { return bad, nil }
		if err := Verify(context.Background(), "s3://b/k", local); err == nil || !strings.Contains(err.Error(), "differs") {
			t.Errorf("%+v: %v, want a mismatch", bad, err)
		}
	}
	stat = func(context.Context, string) (Object, error) { return Object{Size: int64(len(b))}, nil }
	if err := Verify(context.Background(), "s3://b/k", local); err == nil || !strings.Contains(err.Error(), "no checksum") {
		t.Errorf("no checksum: %v", err)
	}
}
