// Package pgvalue reads and writes PostgreSQL values in the forms they
// travel in through Sluice: the text form of each type (what the type's
// output function prints, what pgoutput and COPY ... TO in text format
// send), and COPY's text and binary row formats. Every destination converts
// values once, at its edge (DESIGN.md, invariant 6); this package is the
// PostgreSQL half of those conversions, shared by all of them, so that a
// destination only decides what a value becomes on its side.
//
// What it offers:
//
//   - The built-in types by OID (Lookup, TypeName, NumericTypmod): the
//     OIDs of built-in types are fixed in every database, so a column's
//     type OID says how its text parses. Types created in a database
//     (enums, domains, composites, extensions) have OIDs of their own and
//     are unknown here: their text form is all there is.
//   - Text forms by type: ParseBool, ParseInt, ParseFloat, ParseNumeric,
//     ParseBytea, ParseDateTime, ParseInterval, ParseUUID, ArrayReader,
//     ParseRange and ParseMultirange, with the reverse AppendX where a
//     destination or a test needs to write a value back.
//   - COPY's text format (ParseCopyTextRow, AppendCopyText,
//     AppendCopyTextRow, CopyTextReader) and binary format
//     (AppendCopyBinaryHeader, AppendCopyBinaryRow,
//     AppendCopyBinaryTrailer, CopyBinaryReader).
//
// Conventions:
//
//   - The text forms parsed are the ones the output functions print with
//     PostgreSQL's default settings for Sluice's sessions (DateStyle ISO,
//     IntervalStyle postgres, bytea_output hex or escape), not every
//     spelling the input functions accept; text in another form is an
//     error (a *SyntaxError), and a destination that must not lose it
//     keeps the text as it is.
//   - ParseX(text) reads a value; AppendX(dst, v) appends a text form to
//     dst and returns the extended buffer, as strconv's AppendX do.
//     Nothing here allocates per value unless the result needs memory of
//     its own (a bytea's bytes, an array element or range bound with
//     escapes, an error).
//   - Parsed slices alias their input where the text needs no unescaping:
//     keep the input alive and unchanged while they are in use.
//   - Rows of text values are proto.Tuple, as the change stream carries
//     them. Rows of binary COPY are [][]byte with nil for NULL (what pgconn
//     returns), since binary values are not the text form a Tuple holds.
package pgvalue
