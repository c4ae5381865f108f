package main

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
)

// uploads holds the XML API multipart uploads in flight (obstore uses them above its
// multipart threshold): the parts stay in memory until the upload completes or aborts.
type uploads struct {
	mu      sync.Mutex
	pending map[string]*upload
}

type upload struct {
	bucket, name, contentType string
	parts                     map[int][]byte
}

type initiated struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	UploadID string   `xml:"UploadId"`
}

type completion struct {
	Parts []struct {
		PartNumber int    `xml:"PartNumber"`
		ETag       string `xml:"ETag"`
	} `xml:"Part"`
}

type completed struct {
	XMLName xml.Name `xml:"CompleteMultipartUploadResult"`
	Bucket  string   `xml:"Bucket"`
	Key     string   `xml:"Key"`
	ETag    string   `xml:"ETag"`
}

func writeXML(w http.ResponseWriter, body any) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	_ = xml.NewEncoder(w).Encode(body)
}

// multipart serves POST ?uploads (initiate), PUT ?partNumber&uploadId (a part),
// POST ?uploadId (complete) and DELETE ?uploadId (abort); false when r is none of them.
func (e *emulator) multipart(w http.ResponseWriter, r *http.Request, bucket, name string) bool {
	query := r.URL.Query()
	id := query.Get("uploadId")
	switch {
	case r.Method == http.MethodPost && query.Has("uploads"):
		if _, err := e.server.Backend().GetBucket(bucket); err != nil {
			http.Error(w, "bucket not found", http.StatusNotFound)
			return true
		}
		raw := make([]byte, 16)
		_, _ = rand.Read(raw)
		id = hex.EncodeToString(raw)
		e.uploads.mu.Lock()
		e.uploads.pending[id] = &upload{bucket, name, r.Header.Get("Content-Type"), map[int][]byte{}}
		e.uploads.mu.Unlock()
		writeXML(w, initiated{Bucket: bucket, Key: name, UploadID: id})
	case id != "" && r.Method == http.MethodPut:
		number, err := strconv.Atoi(query.Get("partNumber"))
		body, readErr := io.ReadAll(r.Body)
		if err != nil || readErr != nil {
			http.Error(w, "bad part", http.StatusBadRequest)
			return true
		}
		e.uploads.mu.Lock()
		pending := e.uploads.pending[id]
		if pending != nil {
			pending.parts[number] = body
		}
		e.uploads.mu.Unlock()
		if pending == nil {
			http.Error(w, "no such upload", http.StatusNotFound)
			return true
		}
		sum := md5.Sum(body)
		w.Header().Set("ETag", strconv.Quote(hex.EncodeToString(sum[:])))
		w.WriteHeader(http.StatusOK)
	case id != "" && r.Method == http.MethodPost:
		e.complete(w, r, id)
	case id != "" && r.Method == http.MethodDelete:
		e.uploads.mu.Lock()
		delete(e.uploads.pending, id)
		e.uploads.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		return false
	}
	return true
}

// complete joins the listed parts in order and stores them as one object.
func (e *emulator) complete(w http.ResponseWriter, r *http.Request, id string) {
	var listed completion
	if err := xml.NewDecoder(r.Body).Decode(&listed); err != nil {
		http.Error(w, "bad CompleteMultipartUpload body", http.StatusBadRequest)
		return
	}
	e.uploads.mu.Lock()
	pending := e.uploads.pending[id]
	delete(e.uploads.pending, id)
	e.uploads.mu.Unlock()
	if pending == nil {
		http.Error(w, "no such upload", http.StatusNotFound)
		return
	}
	sort.Slice(listed.Parts, func(i, j int) bool { return listed.Parts[i].PartNumber < listed.Parts[j].PartNumber })
	var body []byte
	for _, part := range listed.Parts {
		data, ok := pending.parts[part.PartNumber]
		if !ok {
			http.Error(w, fmt.Sprintf("part %d was not uploaded", part.PartNumber), http.StatusBadRequest)
			return
		}
		body = append(body, data...)
	}
	e.writes.Lock()
	stored, refused := e.store(pending.bucket, pending.name, pending.contentType, body)
	e.writes.Unlock()
	if refused != nil {
		http.Error(w, refused.text, refused.status)
		return
	}
	w.Header().Set("X-Goog-Generation", strconv.FormatInt(stored.Generation, 10))
	writeXML(w, completed{Bucket: pending.bucket, Key: pending.name, ETag: quoted(stored.Etag)})
}
