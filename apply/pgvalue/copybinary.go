package pgvalue

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// COPY's binary format: a header (the signature, 32 bits of flags, the
// length of a header extension and the extension), then per row the
// number of fields (16 bits) and per field its length (32 bits, -1 for
// NULL) and bytes, each in its type's binary send format, and a trailer
// (a field count of -1). Integers are big-endian.

// copyBinarySignature starts every COPY binary stream.
const copyBinarySignature = "PGCOPY\n\xff\r\n\x00"

// maxCopyField is the largest value PostgreSQL can hold (1 GB less one
// byte): a longer field means the stream is corrupt.
const maxCopyField = 1<<30 - 1

// AppendCopyBinaryHeader appends the header of a COPY binary stream: no
// flags and no header extension.
func AppendCopyBinaryHeader(dst []byte) []byte {
	dst = append(dst, copyBinarySignature...)
	dst = binary.BigEndian.AppendUint32(dst, 0) // flags
	return binary.BigEndian.AppendUint32(dst, 0)
}

// AppendCopyBinaryRow appends a row of COPY's binary format. Each field is
// a value in its type's binary form, or nil for NULL.
func AppendCopyBinaryRow(dst []byte, fields [][]byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(fields)))
	for _, f := range fields {
		if f == nil {
			dst = binary.BigEndian.AppendUint32(dst, 0xffffffff) // -1: NULL
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(f)))
		dst = append(dst, f...)
	}
	return dst
}

// AppendCopyBinaryTrailer appends the trailer that ends a COPY binary
// stream.
func AppendCopyBinaryTrailer(dst []byte) []byte {
	return binary.BigEndian.AppendUint16(dst, 0xffff) // -1
}

// CopyBinaryReader reads the rows of COPY's binary format from a stream,
// as COPY ... TO STDOUT (FORMAT binary) writes them, one row in memory at
// a time.
type CopyBinaryReader struct {
	r      *bufio.Reader
	ncols  int
	header bool // read
	done   bool
	rows   int64
	buf    []byte   // the row's values, back to back
	fields [][]byte // the row: slices of buf, nil for NULL
	ends   []int    // where each field ends in buf, -1 for NULL
	num    [4]byte  // a count or length being read; a local array would escape to the heap through io.ReadFull
}

// NewCopyBinaryReader reads rows of ncols fields from r; the header is
// read with the first row.
func NewCopyBinaryReader(r io.Reader, ncols int) *CopyBinaryReader {
	return &CopyBinaryReader{r: bufio.NewReaderSize(r, copyReadBuffer), ncols: ncols}
}

// Next returns the next row, each field a value in its type's binary form
// or nil for NULL, or io.EOF after the trailer. The row and its values
// alias the reader's memory: they are valid until the next call. A header
// that is not COPY's, a stream that ends before the trailer or goes on
// after it, and a row of another width are errors wrapping ErrCopyFormat.
func (c *CopyBinaryReader) Next() ([][]byte, error) {
	if c.done {
		return nil, io.EOF
	}
	if !c.header {
		if err := c.readHeader(); err != nil {
			return nil, err
		}
		c.header = true
	}
	if _, err := io.ReadFull(c.r, c.num[:2]); err != nil {
		return nil, c.truncated(err)
	}
	n := int16(binary.BigEndian.Uint16(c.num[:2]))
	if n == -1 {
		c.done = true
		if _, err := c.r.ReadByte(); err != io.EOF {
			if err == nil {
				return nil, fmt.Errorf("%w: data after the trailer", ErrCopyFormat)
			}
			return nil, err
		}
		return nil, io.EOF
	}
	c.rows++
	if int(n) != c.ncols {
		return nil, fmt.Errorf("%w: row %d has %d fields, expected %d", ErrCopyFormat, c.rows, n, c.ncols)
	}
	c.buf, c.ends = c.buf[:0], c.ends[:0]
	for range n {
		if _, err := io.ReadFull(c.r, c.num[:]); err != nil {
			return nil, c.truncated(err)
		}
		l := int32(binary.BigEndian.Uint32(c.num[:]))
		switch {
		case l == -1:
			c.ends = append(c.ends, -1)
			continue
		case l < -1 || l > maxCopyField:
			return nil, fmt.Errorf("%w: row %d has a field of length %d", ErrCopyFormat, c.rows, l)
		}
		start := len(c.buf)
		c.buf = append(c.buf, make([]byte, l)...)
		if _, err := io.ReadFull(c.r, c.buf[start:]); err != nil {
			return nil, c.truncated(err)
		}
		c.ends = append(c.ends, len(c.buf))
	}
	// Sliced only now: buf may have moved while it grew.
	c.fields = c.fields[:0]
	start := 0
	for _, end := range c.ends {
		if end < 0 {
			c.fields = append(c.fields, nil)
			continue
		}
		c.fields = append(c.fields, c.buf[start:end:end])
		start = end
	}
	return c.fields, nil
}

// readHeader checks the signature and the flags and skips the header
// extension, which no reader needs to understand.
func (c *CopyBinaryReader) readHeader() error {
	var h [len(copyBinarySignature) + 8]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return c.truncated(err)
	}
	if string(h[:len(copyBinarySignature)]) != copyBinarySignature {
		return fmt.Errorf("%w: no COPY binary signature", ErrCopyFormat)
	}
	flags := binary.BigEndian.Uint32(h[len(copyBinarySignature):])
	// Bits 16-31 are for changes a reader must understand (bit 16: rows
	// carry an OID, WITH OIDS, gone since PostgreSQL 12); bits 0-15 may
	// be ignored.
	if flags>>16 != 0 {
		return fmt.Errorf("%w: header flags %#x not supported", ErrCopyFormat, flags)
	}
	ext := binary.BigEndian.Uint32(h[len(copyBinarySignature)+4:])
	if ext > maxCopyField {
		return fmt.Errorf("%w: header extension of %d bytes", ErrCopyFormat, ext)
	}
	if _, err := c.r.Discard(int(ext)); err != nil {
		return c.truncated(err)
	}
	return nil
}

// truncated turns the end of the stream where more was due into an
// error.
func (c *CopyBinaryReader) truncated(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: the data ended before the trailer (after %d rows)", ErrCopyFormat, c.rows)
	}
	return err
}
