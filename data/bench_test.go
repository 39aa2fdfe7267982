package data

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/infomax/infomax/testkit/fullsize"
)

// Speed and memory of loading (make bench). The figures are printed, not
// asserted: the targets are a first read of the CIFAR-10 JPEG archive in at
// most 10 s and a cached start in at most 2 s on a 2-core machine.

func BenchmarkLoadCIFAR10JPEG(b *testing.B) {
	path := sharedArchive(b, "cifar10-jpeg.tar.gz")
	cache := b.TempDir()
	o := Options{Format: "cifar10", Path: path, Shape: Shape{32, 32, 3}}
	for _, c := range []struct {
		name  string
		cache string
	}{{"first-read", ""}, {"cached", cache}} {
		b.Run(c.name, func(b *testing.B) {
			o.CacheDir = c.cache
			if c.cache != "" {
				if _, err := Load(context.Background(), o); err != nil { // fill the cache
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t := time.Now()
				s, err := Load(context.Background(), o)
				if err != nil {
					b.Fatal(err)
				}
				sec := time.Since(t).Seconds()
				b.ReportMetric(sec, "s/load")
				b.ReportMetric(float64(s.Train.Len()+s.Test.Len())/sec, "images/s")
				fmt.Printf("CIFAR-10 JPEG archive, %s: %d images in %.2f s on %d cores (from cache: %v)\n",
					c.name, s.Train.Len()+s.Test.Len(), sec, runtime.GOMAXPROCS(0), s.FromCache)
			}
		})
	}
}

// BenchmarkTinyImageNetFullSize builds Tiny ImageNet's full training split
// (200 classes × 500 images of 64×64, 100,000 images: 1.2 GB of pixels) as
// the official zip from the subset's images repeated, then loads it and
// prints the time and the peak resident memory.
func BenchmarkTinyImageNetFullSize(b *testing.B) {
	zipPath := filepath.Join(b.TempDir(), "tiny-imagenet-200.zip")
	if _, err := fullsize.TinyImageNet("..", zipPath, 5); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		s, err := Load(context.Background(), Options{Format: "tiny_imagenet", Path: zipPath, Shape: Shape{64, 64, 3}})
		if err != nil {
			b.Fatal(err)
		}
		sec := time.Since(start).Seconds()
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		peak := float64(ru.Maxrss) / (1 << 20) // KiB → GiB
		b.ReportMetric(sec, "s/load")
		b.ReportMetric(peak, "GiB-peak-rss")
		fmt.Printf("Tiny ImageNet at full size: %d training images (%.2f GB of pixels) and %d val in %.1f s; peak resident memory %.2f GiB of 24\n",
			s.Train.Len(), float64(len(s.Train.Images))/1e9, s.Test.Len(), sec, peak)
	}
}
