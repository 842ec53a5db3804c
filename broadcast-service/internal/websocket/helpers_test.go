package websocket

import (
	"net/http"
	"net/http/httptest"
)

func httptestRequest(host, origin string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://"+host+"/ws?item_id=x", nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}
