package search

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/apache/thrift/lib/go/thrift"
)

// checkFooter walks a Parquet file's footer (Thrift's compact protocol)
// before Arrow's reader builds anything from it, and refuses a schema whose
// counts cannot be true: Arrow allocates what a schema element's
// num_children claims (a fuzzed 2 KB file asked for gigabytes). The footer
// must fit in the file, hold at most as many schema elements as it has
// bytes, and no element may claim more children than there are elements.
func checkFooter(raw []byte) error {
	n := len(raw)
	if n < 12 || !bytes.Equal(raw[n-4:], []byte(parquetMagic)) {
		return fmt.Errorf("no Parquet footer (truncated or corrupt footer?)")
	}
	flen := int(binary.LittleEndian.Uint32(raw[n-8 : n-4]))
	if flen <= 0 || flen > n-12 {
		return fmt.Errorf("a footer of %d bytes in a %d-byte file (truncated or corrupt footer?)", flen, n)
	}
	footer := raw[n-8-flen : n-8]
	ctx := context.Background()
	buf := &thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(footer)}
	p := thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{MaxMessageSize: int32(flen)})
	if _, err := p.ReadStructBegin(ctx); err != nil {
		return fmt.Errorf("its footer: %w (truncated or corrupt footer?)", err)
	}
	for {
		_, typ, id, err := p.ReadFieldBegin(ctx)
		if err != nil {
			return fmt.Errorf("its footer: %w (truncated or corrupt footer?)", err)
		}
		if typ == thrift.STOP {
			return nil
		}
		if id != 2 || typ != thrift.LIST { // FileMetaData.schema is field 2
			if err := thrift.Skip(ctx, p, typ, 32); err != nil {
				return fmt.Errorf("its footer: %w (truncated or corrupt footer?)", err)
			}
			continue
		}
		et, size, err := p.ReadListBegin(ctx)
		if err != nil || et != thrift.STRUCT || size <= 0 || size > flen {
			return fmt.Errorf("its footer's schema claims %d elements in %d bytes (truncated or corrupt footer?)", size, flen)
		}
		for range size {
			if _, err := p.ReadStructBegin(ctx); err != nil {
				return fmt.Errorf("its footer's schema: %w (corrupt footer)", err)
			}
			for {
				_, ft, fid, err := p.ReadFieldBegin(ctx)
				if err != nil {
					return fmt.Errorf("its footer's schema: %w (corrupt footer)", err)
				}
				if ft == thrift.STOP {
					break
				}
				if fid == 5 && ft == thrift.I32 { // SchemaElement.num_children
					c, err := p.ReadI32(ctx)
					if err != nil {
						return fmt.Errorf("its footer's schema: %w (corrupt footer)", err)
					}
					if c < 0 || int(c) >= size {
						return fmt.Errorf("a schema element of its footer claims %d children among %d elements (corrupt footer)", c, size)
					}
					continue
				}
				if err := thrift.Skip(ctx, p, ft, 32); err != nil {
					return fmt.Errorf("its footer's schema: %w (corrupt footer)", err)
				}
			}
		}
		if err := p.ReadListEnd(ctx); err != nil {
			return fmt.Errorf("its footer's schema: %w (corrupt footer)", err)
		}
	}
}
