package mask

import (
	"errors"
	"fmt"
)

// Errors Rewrite returns, wrapped with the byte offset where the problem was found. Test for
// them with errors.Is.
var (
	// ErrMalformed: the body is not strict JSON (RFC 8259) or valid CSV.
	ErrMalformed = errors.New("mask: malformed body")
	// ErrTooDeep: JSON nesting is deeper than Limits.MaxDepth.
	ErrTooDeep = errors.New("mask: nesting too deep")
	// ErrTooLarge: one record (or one token outside the records) is over Limits.MaxRecordBytes.
	ErrTooLarge = errors.New("mask: record too large")
	// ErrDenied matches every *DeniedError under errors.Is.
	ErrDenied = errors.New("mask: denied field present")
)

// DeniedError is returned when a field the plan marks "deny" is present anywhere in the
// response: in a record, in the envelope, in a record removed by row rules, in a dropped
// value or in a JSON document embedded in a string. Field is the rule name as written in the
// plan. Both `var d *DeniedError` and `var d DeniedError` work as errors.As targets.
type DeniedError struct{ Field string }

// Error names the denied field.
func (e DeniedError) Error() string {
	return fmt.Sprintf("mask: denied field %q is present", e.Field)
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// As lets errors.As fill a DeniedError value as well as a *DeniedError.
func (e *DeniedError) As(target any) bool {
	if t, ok := target.(*DeniedError); ok {
		*t = *e
		return true
	}
	return false
}
