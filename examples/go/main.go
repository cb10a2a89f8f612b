// Migrates one account with imapmig from Go and prints progress.
//
//	cargo build --release -p imapmig-ffi      # builds target/release/libimapmig_ffi.a
//	cd examples/go && go run . config.json
//
// config.json follows the schema at the top of imapmig-ffi/include/imapmig.h. Ctrl-C stops
// the migration at the next message boundary; running again resumes it.
//
// Exit status: 0 every message copied, 1 finished with messages refused or skipped,
// 2 failed, 130 interrupted.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: migrate config.json")
		os.Exit(2)
	}
	config, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	m, err := NewMigration(string(config))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot set up the migration:", err)
		os.Exit(2)
	}
	defer m.Close()

	// Cancel is thread-safe: a signal goroutine may call it while main reads events.
	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, os.Interrupt)
	go func() {
		<-interrupts
		fmt.Fprintln(os.Stderr, "stopping at the next message boundary...")
		m.Cancel()
	}()

	if err := m.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "cannot start:", err)
		os.Exit(2)
	}
	events := 0
	for {
		text, finished, err := m.NextEvent(500 * time.Millisecond)
		if err != nil {
			fmt.Fprintln(os.Stderr, "reading events:", err)
			break
		}
		if finished {
			break
		}
		if text == "" {
			continue // the timeout passed without an event
		}
		events++
		printEvent(text)
	}

	report, err := m.Wait()
	var failure *Error
	switch {
	case errors.As(err, &failure) && failure.Name == "IMAPMIG_STATUS_CANCELLED":
		fmt.Fprintln(os.Stderr, "interrupted:", failure.Message)
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "migration failed:", err)
		os.Exit(2)
	}
	var summary struct {
		Complete bool    `json:"complete"`
		Copied   uint64  `json:"copied"`
		Bytes    uint64  `json:"bytes"`
		Seconds  float64 `json:"seconds"`
	}
	if err := json.Unmarshal([]byte(report), &summary); err != nil {
		fmt.Fprintln(os.Stderr, "unreadable report:", err)
		os.Exit(2)
	}
	fmt.Printf("done: %d message(s), %d bytes in %.1f s, %d events, complete=%v\n",
		summary.Copied, summary.Bytes, summary.Seconds, events, summary.Complete)
	if !summary.Complete {
		os.Exit(1)
	}
}

func printEvent(text string) {
	var ev map[string]interface{}
	if err := json.Unmarshal([]byte(text), &ev); err != nil {
		fmt.Println("event:", text)
		return
	}
	switch ev["type"] {
	case "planned":
		fmt.Printf("planned %v folder(s)\n", ev["folders"])
	case "folder_started":
		fmt.Printf("%v: copying %v message(s)\n", ev["folder"], ev["to_copy"])
	case "progress":
		fmt.Printf("%v: %v copied (%v in total)\n", ev["folder"], ev["copied"], ev["total_copied"])
	case "folder_done":
		fmt.Printf("%v -> %v: %v copied, %v already there\n",
			ev["source"], ev["target"], ev["copied"], ev["already_there"])
	case "message_skipped":
		fmt.Printf("%v: UID %v not copied: %v\n", ev["folder"], ev["uid"], ev["reason"])
	case "retrying":
		fmt.Printf("%v: retry %v in %v ms after: %v\n", ev["folder"], ev["attempt"], ev["after_ms"], ev["error"])
	case "finished", "failed":
		fmt.Printf("%v\n", ev["type"])
	default:
		fmt.Println("event:", text)
	}
}
