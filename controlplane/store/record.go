package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// A stored revision is encoded in the protobuf wire format, written by hand
// with protowire so the store needs no generated code. The wire format gives
// us forward compatibility for free: a newer build may add fields, and an
// older one skips fields it does not know. Field numbers are forever; never
// reuse one.
const (
	fieldSHA256        protowire.Number = 1
	fieldPayload       protowire.Number = 2
	fieldSource        protowire.Number = 3
	fieldSourceName    protowire.Number = 4
	fieldAuthor        protowire.Number = 5
	fieldCreatedUnixMs protowire.Number = 6
	fieldRollbackOf    protowire.Number = 7
	fieldEndpoints     protowire.Number = 8
	fieldRenderedFrom  protowire.Number = 9  // repeated SourceFile{1: name, 2: sha256}
	fieldWarning       protowire.Number = 10 // repeated Warning{1: path, 2: kind, 3: detail}
)

// The version is the bucket key, so it is not repeated in the record.
func encodeRecord(r *Revision) []byte {
	b := make([]byte, 0, len(r.Payload)+len(r.Source)+len(r.SourceName)+len(r.Author)+128)
	b = appendString(b, fieldSHA256, r.SHA256)
	b = appendBytes(b, fieldPayload, r.Payload)
	b = appendBytes(b, fieldSource, r.Source)
	b = appendString(b, fieldSourceName, r.SourceName)
	b = appendString(b, fieldAuthor, r.Author)
	b = appendVarint(b, fieldCreatedUnixMs, uint64(r.CreatedUnixMs))
	b = appendVarint(b, fieldRollbackOf, r.RollbackOf)
	b = appendVarint(b, fieldEndpoints, uint64(r.Endpoints))
	for _, f := range r.RenderedFrom {
		var m []byte
		m = appendString(m, 1, f.Name)
		m = appendString(m, 2, f.SHA256)
		b = protowire.AppendTag(b, fieldRenderedFrom, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	for _, w := range r.Warnings {
		var m []byte
		m = appendString(m, 1, w.Path)
		m = appendString(m, 2, w.Kind)
		m = appendString(m, 3, w.Detail)
		b = protowire.AppendTag(b, fieldWarning, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}

// decodeStrings reads the string fields 1..len(dst) of an embedded message
// into dst, skipping any other field.
func decodeStrings(m []byte, dst ...*string) error {
	for len(m) > 0 {
		num, typ, n := protowire.ConsumeTag(m)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m = m[n:]
		if typ == protowire.BytesType && num >= 1 && int(num) <= len(dst) {
			v, n := protowire.ConsumeBytes(m)
			if n < 0 {
				return protowire.ParseError(n)
			}
			*dst[num-1] = string(v)
			m = m[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, m)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m = m[n:]
	}
	return nil
}

func appendString(b []byte, n protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, n protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarint(b []byte, n protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// decodeFull decodes a record with its content and checks the payload against
// its sha256, so disk corruption surfaces as an error instead of a bad
// snapshot on the fleet. key and val belong to a bbolt transaction; the result
// holds copies.
func decodeFull(key, val []byte) (*Revision, error) {
	r, err := decode(key, val, true)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(r.Payload); hex.EncodeToString(sum[:]) != r.SHA256 {
		return nil, fmt.Errorf("decode version %d: payload does not match its sha256 (store corrupt)", r.Version)
	}
	return r, nil
}

// decodeMeta decodes a record without Payload and Source.
func decodeMeta(key, val []byte) (*Revision, error) {
	return decode(key, val, false)
}

func decode(key, val []byte, content bool) (*Revision, error) {
	if len(key) != 8 {
		return nil, fmt.Errorf("decode: key %x is not a version", key)
	}
	r := &Revision{Version: binary.BigEndian.Uint64(key)}
	fail := func(n int) (*Revision, error) {
		return nil, fmt.Errorf("decode version %d: %w", r.Version, protowire.ParseError(n))
	}
	for len(val) > 0 {
		num, typ, n := protowire.ConsumeTag(val)
		if n < 0 {
			return fail(n)
		}
		val = val[n:]
		switch {
		case typ == protowire.BytesType && num <= fieldAuthor:
			v, n := protowire.ConsumeBytes(val)
			if n < 0 {
				return fail(n)
			}
			val = val[n:]
			switch num {
			case fieldSHA256:
				r.SHA256 = string(v)
			case fieldPayload:
				if content {
					r.Payload = bytes.Clone(v)
				}
			case fieldSource:
				if content {
					r.Source = bytes.Clone(v)
				}
			case fieldSourceName:
				r.SourceName = string(v)
			case fieldAuthor:
				r.Author = string(v)
			}
		case typ == protowire.VarintType && num >= fieldCreatedUnixMs && num <= fieldEndpoints:
			v, n := protowire.ConsumeVarint(val)
			if n < 0 {
				return fail(n)
			}
			val = val[n:]
			switch num {
			case fieldCreatedUnixMs:
				r.CreatedUnixMs = int64(v)
			case fieldRollbackOf:
				r.RollbackOf = v
			case fieldEndpoints:
				r.Endpoints = uint32(v)
			}
		case typ == protowire.BytesType && (num == fieldRenderedFrom || num == fieldWarning):
			v, n := protowire.ConsumeBytes(val)
			if n < 0 {
				return fail(n)
			}
			val = val[n:]
			var err error
			if num == fieldRenderedFrom {
				var f SourceFile
				err = decodeStrings(v, &f.Name, &f.SHA256)
				r.RenderedFrom = append(r.RenderedFrom, f)
			} else {
				var w Warning
				err = decodeStrings(v, &w.Path, &w.Kind, &w.Detail)
				r.Warnings = append(r.Warnings, w)
			}
			if err != nil {
				return nil, fmt.Errorf("decode version %d: %w", r.Version, err)
			}
		default:
			// A field from a newer build (or an unexpected type): skip it.
			n := protowire.ConsumeFieldValue(num, typ, val)
			if n < 0 {
				return fail(n)
			}
			val = val[n:]
		}
	}
	return r, nil
}
