package fielderr

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRenameNamesEveryField(t *testing.T) {
	err := Nest("Security", New("ShutdownTimeout", "(45s) must be below {SessionTimeout} (30s)"))
	var fe *Error
	if !errors.As(fmt.Errorf("config: %w", err), &fe) {
		t.Fatal("not an *Error")
	}
	got := fe.Rename(func(f string) string { return strings.ToUpper(strings.ReplaceAll(f, ".", "_")) })
	if want := "SECURITY_SHUTDOWNTIMEOUT (45s) must be below SECURITY_SESSIONTIMEOUT (30s)"; got != want {
		t.Errorf("Rename = %q, want %q", got, want)
	}
	if want := "Security.ShutdownTimeout (45s) must be below Security.SessionTimeout (30s)"; err.Error() != want {
		t.Errorf("Error = %q, want %q", err.Error(), want)
	}
	plain := errors.New("not a field error")
	if Nest("X", plain) != plain {
		t.Error("Nest changed an error that is not an *Error")
	}
}
