package main

// A small Go face over the imapmig C API (imapmig-ffi/include/imapmig.h). It uses the
// pull-based event queue, so no C-to-Go callbacks are needed, and it never relies on a
// thread-local "last error": every call returns its own error object, which is what makes it
// safe while goroutines move between OS threads.

/*
#cgo CFLAGS: -I${SRCDIR}/../../imapmig-ffi/include
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libimapmig_ffi.a -lgcc_s -lutil -lrt -lpthread -lm -ldl
#include <stdlib.h>
#include <string.h>
#include "imapmig.h"
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// Error is an imapmig failure: its status, message and whether a retry may help.
type Error struct {
	Status    int
	Name      string
	Message   string
	Transient bool
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%s)", e.Message, e.Name) }

// takeError turns a C status (cgo gives an enum as uint32) and error object into a Go
// error, freeing the object.
func takeError(status uint32, cerr *C.imapmig_error) error {
	if status == C.IMAPMIG_STATUS_OK {
		return nil
	}
	e := &Error{
		Status: int(status),
		Name:   C.GoString(C.imapmig_status_name(C.int32_t(status))),
	}
	if cerr != nil {
		e.Message = C.GoString(C.imapmig_error_message(cerr))
		e.Transient = C.imapmig_error_is_transient(cerr) != 0
		C.imapmig_error_free(cerr)
	} else {
		e.Message = C.GoString(C.imapmig_status_description(C.int32_t(status)))
	}
	return e
}

// takeString copies a library-owned string into Go and frees it.
func takeString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.imapmig_string_free(s)
	return C.GoString(s)
}

// Migration is one account pair (see imapmig_migration_new for the JSON configuration).
type Migration struct {
	handle *C.imapmig_migration
}

// NewMigration checks the configuration and opens the sync-state file.
func NewMigration(configJSON string) (*Migration, error) {
	cfg := C.CString(configJSON)
	defer func() {
		// The configuration holds passwords.
		C.memset(unsafe.Pointer(cfg), 0, C.size_t(len(configJSON)))
		C.free(unsafe.Pointer(cfg))
	}()
	var handle *C.imapmig_migration
	var cerr *C.imapmig_error
	if err := takeError(C.imapmig_migration_new(cfg, &handle, &cerr), cerr); err != nil {
		return nil, err
	}
	return &Migration{handle: handle}, nil
}

// Start begins a run in the background.
func (m *Migration) Start() error {
	var cerr *C.imapmig_error
	return takeError(C.imapmig_migration_start(m.handle, &cerr), cerr)
}

// NextEvent waits up to timeout for the next event (a JSON object). finished is true once the
// run's last event has been read; event is "" when the timeout passed without one.
func (m *Migration) NextEvent(timeout time.Duration) (event string, finished bool, err error) {
	var out *C.char
	var cerr *C.imapmig_error
	status := C.imapmig_next_event(m.handle, C.uint32_t(timeout.Milliseconds()), &out, &cerr)
	switch status {
	case C.IMAPMIG_STATUS_OK:
		return takeString(out), false, nil
	case C.IMAPMIG_STATUS_TIMEOUT:
		return "", false, nil
	case C.IMAPMIG_STATUS_FINISHED:
		return "", true, nil
	}
	return "", false, takeError(status, cerr)
}

// Cancel asks the run to stop at the next message boundary. Safe from any goroutine.
func (m *Migration) Cancel() {
	C.imapmig_migration_cancel(m.handle)
}

// Wait blocks until the run is over and returns its report (JSON) or its error.
func (m *Migration) Wait() (string, error) {
	var out *C.char
	var cerr *C.imapmig_error
	status := C.imapmig_migration_wait(m.handle, &out, &cerr)
	if err := takeError(status, cerr); err != nil {
		return "", err
	}
	return takeString(out), nil
}

// Close frees the handle (cancelling and waiting for a run still under way).
func (m *Migration) Close() {
	if m.handle != nil {
		C.imapmig_migration_free(m.handle)
		m.handle = nil
	}
}
