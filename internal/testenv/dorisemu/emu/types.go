package emu

import (
	"fmt"
	"strings"
)

// Kind is a Doris column type family.
type Kind uint8

const (
	KindBoolean Kind = iota + 1
	KindTinyInt
	KindSmallInt
	KindInt
	KindBigInt
	KindLargeInt
	KindFloat
	KindDouble
	KindDecimal
	KindDate
	KindDateTime
	KindChar
	KindVarchar
	KindString
	KindJSON
)

// Doris's documented limits.
const (
	maxVarcharLen   = 65533
	maxCharLen      = 255
	maxDecimalPrec  = 38
	maxDateTimePrec = 6
	// string_type_length_soft_limit_bytes, Doris's default ceiling on a
	// STRING value.
	maxStringBytes = 1 << 20
)

// Type is a Doris column type as the catalog keeps it.
type Type struct {
	Kind  Kind
	Len   int // CHAR/VARCHAR length in bytes
	Prec  int // DECIMAL precision; DATETIME fractional digits
	Scale int // DECIMAL scale
}

// ParseType reads a Doris type name and its parenthesised arguments (nil
// when none were written), checking Doris's limits with its messages.
func ParseType(name string, args []int) (Type, error) {
	arg := func(i, def int) int {
		if i < len(args) {
			return args[i]
		}
		return def
	}
	switch strings.ToUpper(name) {
	case "BOOLEAN", "BOOL":
		return Type{Kind: KindBoolean}, nil
	case "TINYINT":
		return Type{Kind: KindTinyInt}, nil
	case "SMALLINT":
		return Type{Kind: KindSmallInt}, nil
	case "INT", "INTEGER":
		return Type{Kind: KindInt}, nil
	case "BIGINT":
		return Type{Kind: KindBigInt}, nil
	case "LARGEINT":
		return Type{Kind: KindLargeInt}, nil
	case "FLOAT":
		return Type{Kind: KindFloat}, nil
	case "DOUBLE":
		return Type{Kind: KindDouble}, nil
	case "DECIMAL", "DECIMALV2", "DECIMALV3":
		p, s := arg(0, 9), arg(1, 0)
		if p < 1 || p > maxDecimalPrec {
			return Type{}, fmt.Errorf("Precision of decimal must between 1 and %d. Precision was set to: %d.", maxDecimalPrec, p)
		}
		if s < 0 || s > p {
			return Type{}, fmt.Errorf("Scale of decimal must between 0 and precision. Scale was set to: %d.", s)
		}
		return Type{Kind: KindDecimal, Prec: p, Scale: s}, nil
	case "DATE", "DATEV2":
		return Type{Kind: KindDate}, nil
	case "DATETIME", "DATETIMEV2":
		p := arg(0, 0)
		if p < 0 || p > maxDateTimePrec {
			return Type{}, fmt.Errorf("Scale of Datetime/Time must between 0 and 6. Scale was set to: %d", p)
		}
		return Type{Kind: KindDateTime, Prec: p}, nil
	case "CHAR":
		n := arg(0, 1)
		if n < 1 || n > maxCharLen {
			return Type{}, fmt.Errorf("Char size must be <= 255: %d", n)
		}
		return Type{Kind: KindChar, Len: n}, nil
	case "VARCHAR":
		n := arg(0, maxVarcharLen)
		if n < 1 || n > maxVarcharLen {
			return Type{}, fmt.Errorf("Varchar size must be between 1 and %d: %d", maxVarcharLen, n)
		}
		return Type{Kind: KindVarchar, Len: n}, nil
	case "STRING", "TEXT":
		return Type{Kind: KindString}, nil
	case "JSON", "JSONB":
		return Type{Kind: KindJSON}, nil
	}
	return Type{}, fmt.Errorf("Unknown data type: %s", strings.ToUpper(name))
}

// String prints the type the way this emulator's DESC and SHOW CREATE TABLE
// do: Doris 2.x's upper-case names with the V2 date types, e.g. INT,
// VARCHAR(400), DECIMAL(10, 2), DATEV2, DATETIMEV2(6), TEXT, JSON.
func (t Type) String() string {
	switch t.Kind {
	case KindBoolean:
		return "BOOLEAN"
	case KindTinyInt:
		return "TINYINT"
	case KindSmallInt:
		return "SMALLINT"
	case KindInt:
		return "INT"
	case KindBigInt:
		return "BIGINT"
	case KindLargeInt:
		return "LARGEINT"
	case KindFloat:
		return "FLOAT"
	case KindDouble:
		return "DOUBLE"
	case KindDecimal:
		return fmt.Sprintf("DECIMAL(%d, %d)", t.Prec, t.Scale)
	case KindDate:
		return "DATEV2"
	case KindDateTime:
		return fmt.Sprintf("DATETIMEV2(%d)", t.Prec)
	case KindChar:
		return fmt.Sprintf("CHAR(%d)", t.Len)
	case KindVarchar:
		return fmt.Sprintf("VARCHAR(%d)", t.Len)
	case KindString:
		return "TEXT"
	case KindJSON:
		return "JSON"
	}
	return "UNKNOWN"
}

// isString reports the kinds whose values are text (for quoting defaults).
func (t Type) isString() bool {
	switch t.Kind {
	case KindChar, KindVarchar, KindString, KindJSON, KindDate, KindDateTime:
		return true
	}
	return false
}

// mariaType is the MariaDB column type that holds every value of t. Text
// lengths are Doris bytes; MariaDB counts characters, so VARCHAR(n) always
// holds them and the emulator enforces the byte limit itself. Long text
// goes to LONGTEXT so wide tables stay under MariaDB's 64 KB row limit;
// key columns keep VARCHAR so they can be indexed.
func (t Type) mariaType(key bool) string {
	switch t.Kind {
	case KindBoolean:
		return "TINYINT(1)"
	case KindTinyInt:
		return "TINYINT"
	case KindSmallInt:
		return "SMALLINT"
	case KindInt:
		return "INT"
	case KindBigInt:
		return "BIGINT"
	case KindLargeInt:
		return "DECIMAL(39,0)"
	case KindFloat:
		return "FLOAT"
	case KindDouble:
		return "DOUBLE"
	case KindDecimal:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Prec, t.Scale)
	case KindDate:
		return "DATE"
	case KindDateTime:
		return fmt.Sprintf("DATETIME(%d)", t.Prec)
	case KindChar, KindVarchar:
		if t.Len <= 255 || (key && t.Len <= 768) {
			return fmt.Sprintf("VARCHAR(%d)", t.Len)
		}
		return "LONGTEXT"
	}
	return "LONGTEXT"
}

var intRank = map[Kind]int{KindTinyInt: 1, KindSmallInt: 2, KindInt: 3, KindBigInt: 4, KindLargeInt: 5}

// canWidenTo reports whether light schema change may turn t into u without
// losing any stored value (Doris allows only widening).
func (t Type) canWidenTo(u Type) bool {
	if t == u {
		return true
	}
	if intRank[t.Kind] > 0 && intRank[u.Kind] > 0 {
		return intRank[u.Kind] >= intRank[t.Kind]
	}
	switch {
	case t.Kind == KindVarchar && u.Kind == KindVarchar, t.Kind == KindChar && u.Kind == KindChar:
		return u.Len >= t.Len
	case t.Kind == KindChar && u.Kind == KindVarchar:
		return u.Len >= t.Len
	case (t.Kind == KindVarchar || t.Kind == KindChar) && u.Kind == KindString:
		return true
	case t.Kind == KindDecimal && u.Kind == KindDecimal:
		return u.Scale == t.Scale && u.Prec >= t.Prec
	case t.Kind == KindFloat && u.Kind == KindDouble:
		return true
	case t.Kind == KindDateTime && u.Kind == KindDateTime:
		return u.Prec >= t.Prec
	}
	return false
}
