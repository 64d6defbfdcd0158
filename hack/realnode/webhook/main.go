// A validating admission webhook for the real-node prototype: it allows every
// request and counts them, so a test can see that the API server reached a pod
// through the pod's Service. Serves TLS with the certificate files given.
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"sync/atomic"
)

type review struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    *struct {
		UID string `json:"uid"`
	} `json:"request,omitempty"`
	Response map[string]any `json:"response,omitempty"`
}

func main() {
	var calls atomic.Int64
	http.HandleFunc("/validate", func(w http.ResponseWriter, r *http.Request) {
		var rv review
		if err := json.NewDecoder(r.Body).Decode(&rv); err != nil || rv.Request == nil {
			http.Error(w, "bad AdmissionReview", http.StatusBadRequest)
			return
		}
		n := calls.Add(1)
		log.Printf("admission call %d from %s uid %s", n, r.RemoteAddr, rv.Request.UID)
		rv.Response = map[string]any{"uid": rv.Request.UID, "allowed": true,
			"warnings": []string{"seen by the real-node webhook pod " + os.Getenv("HOSTNAME")}}
		rv.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rv)
	})
	log.Fatal(http.ListenAndServeTLS(":8443", os.Args[1], os.Args[2], nil))
}
