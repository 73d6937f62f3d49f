package pgvalue

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/sluicedb/sluice/proto"
)

// COPY's text format: one row a line, ended by a newline; fields
// separated by tabs; \N for NULL; a backslash escapes the rest (\b \f \n
// \r \t \v, \ooo in octal, \xhh in hex, and any other character stands
// for itself, the backslash, tab and newline included).

// ErrCopyFormat reports COPY data that is not in the format it is read
// as; errors wrap it with where and what.
var ErrCopyFormat = errors.New("pgvalue: malformed COPY data")

// ErrUnchangedToast reports a row holding an unchanged TOAST value
// (proto.KindToast) where a whole row is written: the change did not
// carry the value, and writing NULL instead would lose it.
var ErrUnchangedToast = errors.New("pgvalue: a row with an unchanged TOAST value has no text form")

// ParseCopyTextRow splits a row of COPY's text format (a line without its
// newline) into fields, reusing dst's slices: a NULL for \N, else the
// value with its escapes undone. The line is unescaped in place (undoing
// an escape never lengthens a field), so the values alias it: no value is
// copied or allocated.
func ParseCopyTextRow(dst proto.Tuple, line []byte) proto.Tuple {
	dst.Kinds, dst.Values = dst.Kinds[:0], dst.Values[:0]
	for start := 0; ; {
		end := copyFieldEnd(line, start)
		f := line[start:end]
		switch {
		case len(f) == 2 && f[0] == '\\' && f[1] == 'N':
			dst.Kinds, dst.Values = append(dst.Kinds, proto.KindNull), append(dst.Values, nil)
		case bytes.IndexByte(f, '\\') < 0:
			dst.Kinds, dst.Values = append(dst.Kinds, proto.KindText), append(dst.Values, f)
		default:
			dst.Kinds, dst.Values = append(dst.Kinds, proto.KindText), append(dst.Values, unescapeCopyText(f[:0], f))
		}
		if end == len(line) {
			return dst
		}
		start = end + 1
	}
}

// copyFieldEnd is the index of the tab that ends the field starting at
// start, or len(line): a tab after an odd number of backslashes is data.
func copyFieldEnd(line []byte, start int) int {
	for i := start; ; {
		j := bytes.IndexByte(line[i:], '\t')
		if j < 0 {
			return len(line)
		}
		j += i
		if backslashesBefore(line[start:j])%2 == 0 {
			return j
		}
		i = j + 1
	}
}

// backslashesBefore counts the backslashes that end s.
func backslashesBefore(s []byte) int {
	n := 0
	for n < len(s) && s[len(s)-1-n] == '\\' {
		n++
	}
	return n
}

// copyEscapes are the letters COPY's text format escapes control
// characters with, by the character (zero: none).
var copyEscapes = [0x20]byte{'\b': 'b', '\f': 'f', '\n': 'n', '\r': 'r', '\t': 't', '\v': 'v'}

// copyUnescapes are copyEscapes the other way round.
var copyUnescapes = [256]byte{'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}

// unescapeCopyText appends f with its escapes undone to dst, as COPY FROM
// reads them. dst may be f[:0]: it is written no faster than f is read.
func unescapeCopyText(dst, f []byte) []byte {
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		if i++; i == len(f) {
			break // a backslash ending the data: COPY FROM drops it
		}
		c = f[i]
		switch {
		case copyUnescapes[c] != 0:
			c = copyUnescapes[c]
		case isOctal(c):
			v := int(c - '0')
			for n := 1; n < 3 && i+1 < len(f) && isOctal(f[i+1]); n++ {
				i++
				v = v<<3 | int(f[i]-'0')
			}
			c = byte(v)
		case c == 'x' && i+1 < len(f) && isHex(f[i+1]):
			i++
			v := unhex(f[i])
			if i+1 < len(f) && isHex(f[i+1]) {
				i++
				v = v<<4 | unhex(f[i])
			}
			c = v
		}
		dst = append(dst, c)
	}
	return dst
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// AppendCopyText appends v escaped for a field of COPY's text format, as
// COPY TO escapes it: a backslash doubled, \b \f \n \r \t \v for those
// control characters, every other byte as it is.
func AppendCopyText(dst, v []byte) []byte {
	start := 0
	for i, c := range v {
		var esc byte
		switch {
		case c == '\\':
			esc = '\\'
		case c < 0x20:
			esc = copyEscapes[c]
		}
		if esc == 0 {
			continue
		}
		dst = append(dst, v[start:i]...)
		dst = append(dst, '\\', esc)
		start = i + 1
	}
	return append(dst, v[start:]...)
}

// AppendCopyTextRow appends t as a line of COPY's text format, with its
// newline. A row with an unchanged TOAST value is ErrUnchangedToast.
func AppendCopyTextRow(dst []byte, t proto.Tuple) ([]byte, error) {
	for i, k := range t.Kinds {
		if i > 0 {
			dst = append(dst, '\t')
		}
		switch k {
		case proto.KindText:
			dst = AppendCopyText(dst, t.Values[i])
		case proto.KindNull:
			dst = append(dst, '\\', 'N')
		case proto.KindToast:
			return dst, ErrUnchangedToast
		default:
			return dst, fmt.Errorf("pgvalue: value kind %q has no text form", k)
		}
	}
	return append(dst, '\n'), nil
}

// CopyTextReader reads the rows of COPY's text format from a stream, as
// COPY ... TO STDOUT writes them, one row in memory at a time. A "\."
// inside a line reads as "." (PostgreSQL 15's COPY FROM would end the
// data there or fail; COPY TO never writes one).
type CopyTextReader struct {
	r     *bufio.Reader
	ncols int
	long  []byte // a row longer than r's buffer, or with an escaped newline, assembled
	row   proto.Tuple
	rows  int64
	done  bool
}

// copyReadBuffer holds most rows whole: longer ones are assembled in a
// buffer of their own.
const copyReadBuffer = 256 << 10

// keepLong is the size up to which the buffer of a long row is kept for
// the next one.
const keepLong = 16 << 20

// NewCopyTextReader reads rows of ncols fields from r.
func NewCopyTextReader(r io.Reader, ncols int) *CopyTextReader {
	return &CopyTextReader{r: bufio.NewReaderSize(r, copyReadBuffer), ncols: ncols}
}

// Next returns the next row, or io.EOF after the last: at the end of the
// stream, or at the end-of-data line "\.". The row and its values alias
// the reader's memory: they are valid until the next call. Data that ends
// inside a row, or a row of another width, is an error wrapping
// ErrCopyFormat.
func (c *CopyTextReader) Next() (proto.Tuple, error) {
	if c.done {
		return proto.Tuple{}, io.EOF
	}
	line, err := c.readLine()
	if err == nil && len(line) == 2 && line[0] == '\\' && line[1] == '.' {
		err = io.EOF
	}
	if err != nil {
		c.done = err == io.EOF
		return proto.Tuple{}, err
	}
	c.rows++
	c.row = ParseCopyTextRow(c.row, line)
	if c.row.Len() != c.ncols {
		return proto.Tuple{}, fmt.Errorf("%w: row %d has %d fields, expected %d", ErrCopyFormat, c.rows, c.row.Len(), c.ncols)
	}
	return c.row, nil
}

// readLine returns the next line without its newline.
func (c *CopyTextReader) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err == nil && !escapedNewline(line) {
		return line[:len(line)-1], nil
	}
	if cap(c.long) > keepLong {
		c.long = nil
	}
	c.long = append(c.long[:0], line...)
	for err == bufio.ErrBufferFull || err == nil && escapedNewline(c.long) {
		line, err = c.r.ReadSlice('\n')
		c.long = append(c.long, line...)
	}
	switch {
	case err == nil:
		return c.long[:len(c.long)-1], nil
	case err == io.EOF && len(c.long) == 0:
		return nil, io.EOF
	case err == io.EOF:
		return nil, fmt.Errorf("%w: the data ended inside row %d", ErrCopyFormat, c.rows+1)
	}
	return nil, err
}

// escapedNewline reports whether the newline ending line is data: a
// backslash escapes it (COPY FROM reads backslash-newline as a newline;
// COPY TO writes \n instead).
func escapedNewline(line []byte) bool {
	return backslashesBefore(line[:len(line)-1])%2 == 1
}
