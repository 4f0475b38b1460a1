package httpapi

import (
	"errors"
	"reflect"
)

// bareSentinel is the type of an errors.New value: a sentinel whose text
// ("not found") needs the wrapper around it to say what was not found.
var bareSentinel = reflect.TypeOf(errors.New(""))

// nodeReason is the reason text of an error, without the wrapping the
// handlers add on the way out. A handler wraps with what it was doing
// ("get %q: %w") for the log, and the node's own message already names the
// document or database ("document nope: not found"), so the whole chain
// reads twice over: `get "nope": document nope: not found`. The reason a
// client sees is the innermost error of the chain that says what happened
// by itself: a typed error (an invalid input, a reason of this layer), or
// else the innermost wrapper around the bare sentinel at the end.
func nodeReason(err error) string {
	e := err
	for {
		next := errors.Unwrap(e)
		if next == nil {
			return e.Error()
		}
		if errors.Unwrap(next) == nil && reflect.TypeOf(next) == bareSentinel {
			return e.Error()
		}
		e = next
	}
}
