package pgvalue

import "bytes"

// maxArrayDims is PostgreSQL's MAXDIM: arrays have at most 6 dimensions.
const maxArrayDims = 6

// ArrayDim is one dimension of an array.
type ArrayDim struct {
	Lower  int // the first subscript: 1 unless the text said otherwise ("[0:1]={...}")
	Length int
}

// ArrayToken is what ArrayReader.Next found.
type ArrayToken uint8

const (
	ArrayOpen    ArrayToken = iota + 1 // "{": a list of elements or of sub-arrays begins
	ArrayClose                         // "}": the list ends
	ArrayElement                       // an element: its text, unquoted and unescaped
	ArrayNull                          // an unquoted NULL: a NULL element
	ArrayEnd                           // the array is complete, and well formed: Dims describes it
)

// ArrayReader walks the text form of an array, a token at a time: the
// output of array_out ("{1,2}", "{{a,\"b c\"},{NULL,\"\\\"\"}}",
// "[0:1]={5,6}", box's "{(1,1),(0,0);(2,2),(1,1)}") and the other
// spellings array_in accepts (whitespace around elements, backslash
// escapes outside quotes, NULL in any case). It checks what array_in
// checks: balanced braces, elements only at the innermost level, sub-arrays
// of one length per dimension, at most 6 dimensions, dimension
// decorations that match the contents. Elements come out in storage order
// (the last subscript varies fastest) and keep the text form of the
// element type. A zero ArrayReader is ready for Reset; it allocates only
// for elements with escapes, and reuses that memory after a Reset.
type ArrayReader struct {
	s        []byte
	i        int
	delim    byte
	depth    int // lists open
	ndim     int // known at the first element; 0 for an empty array
	dims     [maxArrayDims]ArrayDim
	count    [maxArrayDims + 1]int // items in the open list at each depth
	declared int                   // dimensions a decoration gave, 0 for none
	state    arrayState
	err      error
	buf      []byte // an element with escapes, unescaped
}

type arrayState uint8

const (
	arrayStart      arrayState = iota // before the decoration and the first "{"
	arrayAfterOpen                    // after "{": an item or "}"
	arrayAfterItem                    // after an item: the delimiter or "}"
	arrayAfterDelim                   // after the delimiter: an item
	arrayDone                         // after the last "}"
)

// Reset starts reading text, an array whose elements are separated by
// delim (Type.Delim: ',' for every built-in type but box's ';').
func (r *ArrayReader) Reset(text []byte, delim byte) {
	*r = ArrayReader{s: text, delim: delim, buf: r.buf[:0]}
}

// Next returns the next token, with the element's text for ArrayElement.
// The text aliases the array's text, or memory of r's that the next call
// may overwrite. After an error (a *SyntaxError) the token is zero, and
// Next returns the same error again.
func (r *ArrayReader) Next() (ArrayToken, []byte, error) {
	if r.err != nil {
		return 0, nil, r.err
	}
	tok, elem, err := r.next()
	if err != nil {
		r.err = syntaxError("array", r.s, err.Error())
		return 0, nil, r.err
	}
	return tok, elem, nil
}

// Dims describes the array after Next has returned ArrayEnd: one entry a
// dimension, none for an empty array. The slice is r's, valid until Reset.
func (r *ArrayReader) Dims() []ArrayDim {
	if r.state != arrayDone {
		return nil
	}
	return r.dims[:r.ndim]
}

// arrayError is a parse failure; Next adds the text.
type arrayError string

func (e arrayError) Error() string { return string(e) }

func (r *ArrayReader) next() (ArrayToken, []byte, error) {
	switch r.state {
	case arrayStart:
		if err := r.decoration(); err != nil {
			return 0, nil, err
		}
		if r.peek() != '{' {
			return 0, nil, arrayError(`expected "{"`)
		}
		return r.open()
	case arrayDone:
		return ArrayEnd, nil, nil
	}
	r.skipSpace()
	c, ok := r.peekOK()
	if !ok {
		return 0, nil, arrayError("ended inside the array")
	}
	switch r.state {
	case arrayAfterItem:
		switch c {
		case r.delim:
			r.i++
			r.state = arrayAfterDelim
			return r.next()
		case '}':
			return r.close()
		}
		return 0, nil, arrayError("expected a delimiter or \"}\" after an element")
	case arrayAfterOpen:
		if c == '}' {
			return r.close()
		}
	}
	switch c {
	case '{':
		return r.open()
	case '}', r.delim:
		return 0, nil, arrayError("missing element")
	}
	return r.element()
}

func (r *ArrayReader) peekOK() (byte, bool) {
	if r.i < len(r.s) {
		return r.s[r.i], true
	}
	return 0, false
}

func (r *ArrayReader) peek() byte {
	c, _ := r.peekOK()
	return c
}

func (r *ArrayReader) skipSpace() {
	for r.i < len(r.s) && isArraySpace(r.s[r.i]) {
		r.i++
	}
}

// isArraySpace is the whitespace array_in skips and array_out quotes.
func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// decoration reads the optional dimension decoration "[lower:upper]...="
// ("[upper]" means a lower bound of 1) and the whitespace before "{".
func (r *ArrayReader) decoration() error {
	for {
		r.skipSpace()
		if r.peek() != '[' {
			break
		}
		if r.declared == maxArrayDims {
			return arrayError("more than 6 dimensions")
		}
		r.i++
		lower := 1
		upper, ok := r.bound()
		if ok && r.peek() == ':' {
			r.i++
			lower = upper
			upper, ok = r.bound()
		}
		if !ok {
			return arrayError("missing dimension value")
		}
		if r.peek() != ']' {
			return arrayError(`missing "]" after dimensions`)
		}
		r.i++
		if upper < lower {
			return arrayError("upper bound below lower bound")
		}
		r.dims[r.declared] = ArrayDim{Lower: lower, Length: upper - lower + 1}
		r.declared++
	}
	if r.declared > 0 {
		if r.peek() != '=' {
			return arrayError(`missing "=" after dimensions`)
		}
		r.i++
		r.skipSpace()
	}
	return nil
}

// bound reads a signed dimension bound.
func (r *ArrayReader) bound() (int, bool) {
	neg := false
	if c := r.peek(); c == '-' || c == '+' {
		neg = c == '-'
		r.i++
	}
	n := digits(r.s[r.i:])
	if n == 0 || n > 10 {
		return 0, false
	}
	v := atoi(r.s[r.i : r.i+n])
	r.i += n
	if neg {
		v = -v
	}
	return v, true
}

func (r *ArrayReader) open() (ArrayToken, []byte, error) {
	if r.depth == maxArrayDims {
		return 0, nil, arrayError("more than 6 dimensions")
	}
	if r.ndim != 0 && r.depth >= r.ndim {
		return 0, nil, arrayError("a sub-array where elements are")
	}
	r.i++
	r.count[r.depth]++
	r.depth++
	r.count[r.depth] = 0
	r.state = arrayAfterOpen
	return ArrayOpen, nil, nil
}

func (r *ArrayReader) close() (ArrayToken, []byte, error) {
	r.i++
	n := r.count[r.depth]
	switch {
	case n == 0 && (r.depth > 1 || r.ndim != 0):
		return 0, nil, arrayError("an empty sub-array")
	case n > 0:
		// The first list to close at a depth sets the dimension's length;
		// a decoration gave them all.
		d := &r.dims[r.depth-1]
		if r.declared == 0 && d.Length == 0 {
			*d = ArrayDim{Lower: 1, Length: n}
		} else if d.Length != n {
			return 0, nil, arrayError("sub-arrays of different lengths, or lengths the dimensions do not give")
		}
	}
	r.depth--
	r.state = arrayAfterItem
	if r.depth > 0 {
		return ArrayClose, nil, nil
	}
	r.skipSpace()
	switch {
	case r.i != len(r.s):
		return 0, nil, arrayError(`text after the last "}"`)
	case r.declared != 0 && r.declared != r.ndim:
		return 0, nil, arrayError("dimensions that do not match the contents")
	}
	r.state = arrayDone
	return ArrayClose, nil, nil
}

// element reads a quoted or unquoted element.
func (r *ArrayReader) element() (ArrayToken, []byte, error) {
	switch {
	case r.ndim == 0:
		r.ndim = r.depth
	case r.depth != r.ndim:
		return 0, nil, arrayError("an element where sub-arrays are")
	}
	r.count[r.depth]++
	r.state = arrayAfterItem
	if r.s[r.i] == '"' {
		return r.quoted()
	}
	return r.unquoted()
}

func (r *ArrayReader) quoted() (ArrayToken, []byte, error) {
	r.i++ // the opening quote
	start, escaped := r.i, false
	for ; r.i < len(r.s); r.i++ {
		switch r.s[r.i] {
		case '\\':
			escaped = true
			r.i++
		case '"':
			elem := r.s[start:r.i]
			r.i++
			if escaped {
				elem = r.unescape(elem)
			}
			return ArrayElement, elem, nil
		}
	}
	return 0, nil, arrayError("unterminated quoted element")
}

func (r *ArrayReader) unquoted() (ArrayToken, []byte, error) {
	start, end, escaped := r.i, r.i, false // end: after the last character that is not trailing whitespace
	for ; r.i < len(r.s); r.i++ {
		c := r.s[r.i]
		switch {
		case c == r.delim || c == '}':
			elem := r.s[start:end]
			switch {
			case escaped:
				return ArrayElement, r.unescape(elem), nil
			case bytes.EqualFold(elem, []byte("NULL")):
				return ArrayNull, nil, nil
			}
			return ArrayElement, elem, nil
		case c == '{' || c == '"':
			return 0, nil, arrayError(`unexpected "{" or '"' in an unquoted element`)
		case c == '\\':
			if r.i+1 == len(r.s) {
				return 0, nil, arrayError("ended after a backslash")
			}
			escaped = true
			r.i++
			end = r.i + 1
		case !isArraySpace(c):
			end = r.i + 1
		}
	}
	return 0, nil, arrayError("ended inside an element")
}

// unescape drops the backslashes of an element with escapes, into r.buf.
func (r *ArrayReader) unescape(elem []byte) []byte {
	r.buf = r.buf[:0]
	for i := 0; i < len(elem); i++ {
		if elem[i] == '\\' && i+1 < len(elem) {
			i++
		}
		r.buf = append(r.buf, elem[i])
	}
	return r.buf
}

// AppendArrayElement appends one element of an array's text form, quoted
// as array_out quotes it: when it is empty, is NULL in any case, or holds
// whitespace, a quote, a backslash, a brace or delim; inside quotes a
// quote or backslash gets a backslash. A NULL element is the bare word
// NULL. An array is "{", the elements (or sub-arrays) separated by delim,
// and "}".
func AppendArrayElement(dst, elem []byte, delim byte) []byte {
	quote := len(elem) == 0 || bytes.EqualFold(elem, []byte("NULL"))
	for _, c := range elem {
		if c == '"' || c == '\\' || c == '{' || c == '}' || c == delim || isArraySpace(c) {
			quote = true
			break
		}
	}
	if !quote {
		return append(dst, elem...)
	}
	dst = append(dst, '"')
	for _, c := range elem {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}
