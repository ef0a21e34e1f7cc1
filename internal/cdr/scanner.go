package cdr

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// scanner splits CSV into records with bounded memory: a record longer than
// max bytes or with more than MaxFields fields is a bad line, skipped
// without being held. Quoted fields may hold commas, doubled quotes and
// newlines; a quote escaped as \" is read too. encoding/csv is not used because it holds a record of any size
// and does not tell the physical line a record started on.
type scanner struct {
	br     *bufio.Reader
	max    int
	line   int64 // physical lines consumed
	eof    bool
	buf    []byte // the current record's field bytes, back to back
	ends   []int  // end offset of each field in buf
	fields []string
}

func newScanner(r io.Reader, max int) *scanner {
	// The buffer holds one whole physical line, so a line longer than max
	// shows up as bufio.ErrBufferFull.
	size := max + 2
	if size < 64 {
		size = 64
	}
	return &scanner{br: bufio.NewReaderSize(r, size), max: max}
}

var errTooLong = errors.New("record too long")

// readLine returns the next physical line without its line ending. The
// slice is valid until the next read. A line longer than the limit is
// consumed and reported as errTooLong.
func (s *scanner) readLine() ([]byte, error) {
	if s.eof {
		return nil, io.EOF
	}
	b, err := s.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		s.line++
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = s.br.ReadSlice('\n')
		}
		if errors.Is(err, io.EOF) {
			s.eof = true
		} else if err != nil {
			return nil, fmt.Errorf("read CDR: %w", err)
		}
		return nil, errTooLong
	case errors.Is(err, io.EOF):
		s.eof = true
		if len(b) == 0 {
			return nil, io.EOF
		}
	case err != nil:
		return nil, fmt.Errorf("read CDR: %w", err)
	}
	s.line++
	if s.line == 1 {
		b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 byte-order mark
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) > s.max {
		return nil, errTooLong
	}
	return b, nil
}

// next returns the next non-blank record's fields and the line it started
// on. The strings are fresh: callers may keep them. A record that breaks a
// limit or has a stray quote is a *LineError; the reader carries on after
// it.
func (s *scanner) next() ([]string, int64, error) {
	for {
		line, err := s.readLine()
		if errors.Is(err, errTooLong) {
			return nil, s.line, &LineError{Line: s.line, Err: fmt.Errorf("longer than %d bytes", s.max)}
		}
		if err != nil {
			return nil, s.line, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		start := s.line
		if err := s.split(line); err != nil {
			return nil, start, &LineError{Line: start, Err: err}
		}
		all := string(s.buf)
		s.fields = s.fields[:0]
		prev := 0
		for _, end := range s.ends {
			s.fields = append(s.fields, all[prev:end])
			prev = end
		}
		out := make([]string, len(s.fields))
		copy(out, s.fields)
		return out, start, nil
	}
}

// split parses one record starting with line into buf and ends, reading
// more lines while a quoted field is open.
func (s *scanner) split(line []byte) error {
	s.buf, s.ends = s.buf[:0], s.ends[:0]
	total := len(line)
	i := 0
	for {
		if i < len(line) && line[i] == '"' {
			i++
			for {
				j := bytes.IndexByte(line[i:], '"')
				if j < 0 {
					// The quoted field goes on to the next line.
					s.buf = append(s.buf, line[i:]...)
					s.buf = append(s.buf, '\n')
					next, err := s.readLine()
					if errors.Is(err, io.EOF) {
						return fmt.Errorf("column %d: quoted field not closed before the end of the file", len(s.ends)+1)
					}
					if errors.Is(err, errTooLong) {
						return fmt.Errorf("longer than %d bytes", s.max)
					}
					if err != nil {
						return err
					}
					total += len(next) + 1
					if total > s.max {
						return fmt.Errorf("longer than %d bytes", s.max)
					}
					line, i = next, 0
					continue
				}
				s.buf = append(s.buf, line[i:i+j]...)
				i += j + 1
				if i < len(line) && line[i] == '"' { // "" is a quote
					s.buf = append(s.buf, '"')
					i++
					continue
				}
				// Some writers escape a quote as \" instead. Taken as one
				// only where a closing quote could not be: before neither
				// a comma nor the end of the line.
				if j > 0 && line[i-2] == '\\' && i < len(line) && line[i] != ',' {
					s.buf[len(s.buf)-1] = '"'
					continue
				}
				break
			}
			if i < len(line) && line[i] != ',' {
				return fmt.Errorf("column %d: text after the closing quote", len(s.ends)+1)
			}
		} else {
			j := bytes.IndexByte(line[i:], ',')
			if j < 0 {
				j = len(line) - i
			}
			s.buf = append(s.buf, line[i:i+j]...)
			i += j
		}
		s.ends = append(s.ends, len(s.buf))
		if len(s.ends) > MaxFields {
			return fmt.Errorf("more than %d columns", MaxFields)
		}
		if i >= len(line) {
			return nil
		}
		i++ // the comma
	}
}
