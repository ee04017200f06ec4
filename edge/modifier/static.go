package modifier

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/textproto"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/valyala/fasthttp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// static.Modifier, with martian's semantics as krakend-martian registers
// it, reading files of the edge's own disk at request time:
//
//   - Request phase: the backend is not called (martian's SkipRoundTrip;
//     the HTTP cache is skipped too, it sits inside martian) and an https
//     URL is downgraded to http. ModifyRequest reports it with
//     ErrSkipRoundTrip; the caller then runs ModifyResponse on an empty
//     200 response with no headers, as krakend-martian builds one.
//   - Response phase: the file is rootPath joined with the cleaned path of
//     the backend request URL (after url_pattern, so "/users/{id}" with
//     rootPath "/srv" reads "/srv/users/42"), or rootPath joined with
//     explicitPaths[path] when the cleaned path is one of its keys
//     (exactly: a key with a trailing slash never matches). It replaces
//     the body; Content-Type is mime.TypeByExtension of the file's
//     extension (none when the extension is unknown: martian sends an
//     empty Content-Type) and Content-Encoding is removed. The rest of the
//     response (status, the backend's headers in response scope) stays.
//   - A file that does not exist answers 404 with the body left as it was
//     (empty, or the backend's in response scope). A file the edge may
//     not read fails the call (martian returns the error).
//   - A Range header on the backend request (forwarded with input_headers)
//     is served as martian does: "bytes=a-b" and "bytes=a-" give a 206
//     with Content-Range, several ranges a multipart/byteranges 206, a
//     range with start > end or without one "-" a 416, a suffix range
//     ("bytes=-5") or a bound that is not a number fails the call.
//
// Deliberate differences, for safety (martian serves these):
//
//   - Nothing outside rootPath is served: files are opened through an
//     os.Root, so a symbolic link under rootPath that points outside it,
//     or a path that climbs out, answers 404 like a missing file. Links
//     that stay inside rootPath are followed.
//   - A directory answers 404: no listing, no index file (martian answers
//     200 with an empty body, its read of the directory failing).
//   - A range past the end of the file is clamped to the file (martian
//     pads the body with NUL bytes up to the requested end, allocating
//     the whole requested length); a range that starts past the end, and
//     ranges that add up to more than the file, answer 416.
//   - The file counts against the service's max_body_bytes as a backend
//     body does: a larger file fails the call.
//
// Why the edge's disk, at request time: martian reads rootPath on the
// gateway's host on every call, so files can be replaced without a
// reload, and there is no bound on their size or number. Copying them
// into the snapshot would make the control plane read its own disk (or
// gwctl ship whole asset trees) and every asset change a config push;
// rootPath is the edge's local directory, like the TLS certificate paths.

// ErrSkipRoundTrip is returned by Modifier.ModifyRequest when a
// static.Modifier answers the call: the caller must not send the request
// (nor look in its HTTP cache) and runs ModifyResponse on an empty 200
// response instead. It is not a failure.
var ErrSkipRoundTrip = errors.New("modifier/martian: static.Modifier answers without calling the backend")

var (
	hdrRange        = []byte("Range")
	hdrContentRange = []byte("Content-Range")
	schemeHTTP      = []byte("http")
	schemeHTTPS     = []byte("https")
)

// staticModifier is static.Modifier.
type staticModifier struct {
	root     string            // path.Clean(rootPath), as martian keeps it
	explicit map[string]string // request path → file, relative to root
	maxBody  int               // 0: unlimited
}

func (c *compiler) static(s *gatewayv1.MartianStatic, path string, onReq, onResp bool) (requestModifier, responseModifier) {
	p := join(path, "static_modifier")
	if s.GetRootPath() == "" {
		c.fail(join(p, "root_path"), "a root path is required (martian would serve the edge's working directory)")
		return nil, nil
	}
	mod := &staticModifier{root: filepath.Clean(s.GetRootPath()), maxBody: c.maxBody}
	for k, v := range s.GetExplicitPaths() {
		rel, ok := localFile(v)
		if !ok {
			c.fail(fmt.Sprintf("%s.explicit_paths[%q]", p, k), "%q is not a file under the root path", v)
			continue
		}
		if mod.explicit == nil {
			mod.explicit = make(map[string]string, len(s.GetExplicitPaths()))
		}
		mod.explicit[k] = rel
	}
	return reqOrNil(mod, onReq), respOrNil(mod, onResp)
}

// localFile returns name (an explicitPaths value, "/mapped.json") relative
// to the root path and reports whether it names a file inside it: not the
// root itself, not climbing out with "..".
func localFile(name string) (string, bool) {
	rel := filepath.Clean(strings.TrimLeft(filepath.FromSlash(name), string(filepath.Separator)))
	return rel, rel != "." && filepath.IsLocal(rel)
}

func (m *staticModifier) modifyRequest(req *fasthttp.Request) error {
	if u := req.URI(); bytes.Equal(u.Scheme(), schemeHTTPS) {
		u.SetSchemeBytes(schemeHTTP)
	}
	return ErrSkipRoundTrip
}

func (m *staticModifier) modifyResponse(resp *fasthttp.Response, req *fasthttp.Request) error {
	if req == nil {
		return errors.New("static.Modifier: no request")
	}
	// fasthttp's Path is decoded and cleaned of "." and ".." segments;
	// path.Clean also drops a trailing slash, as martian's filepath.Clean.
	reqPath := path.Clean("/" + string(req.URI().Path()))
	rel, ok := m.explicit[reqPath]
	if !ok {
		rel = strings.TrimPrefix(reqPath, "/")
		if rel == "" {
			rel = "."
		}
	}
	f, err := os.OpenInRoot(m.root, rel)
	if err != nil {
		if notServed(err) {
			resp.SetStatusCode(fasthttp.StatusNotFound)
			return nil
		}
		return fmt.Errorf("static.Modifier: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("static.Modifier: %w", err)
	}
	if !info.Mode().IsRegular() {
		resp.SetStatusCode(fasthttp.StatusNotFound)
		return nil
	}
	size := info.Size()
	contentType := mime.TypeByExtension(filepath.Ext(rel))
	setContentType(resp, contentType)
	resp.Header.DelBytes(hdrContentEncoding)
	rh := req.Header.PeekBytes(hdrRange)
	if len(rh) == 0 {
		if m.maxBody > 0 && size > int64(m.maxBody) {
			return fmt.Errorf("static.Modifier: %s: %w", rel, fasthttp.ErrBodyTooLarge)
		}
		resp.ResetBody()
		if _, err := io.Copy(resp.BodyWriter(), f); err != nil {
			return fmt.Errorf("static.Modifier: %w", err)
		}
		return nil
	}
	return m.serveRanges(resp, f, string(rh), size, contentType)
}

// notServed reports whether an open error means "no such file under the
// root": the file or a directory on its path is missing or not a
// directory, or the path leaves the root (os.Root's own errors, which are
// not errnos). Permission and other system errors fail the call.
func notServed(err error) bool {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return false
	}
	var errno syscall.Errno
	if !errors.As(pe.Err, &errno) {
		return true // "path escapes from parent", "empty path"
	}
	switch errno {
	case syscall.ENOENT, syscall.ENOTDIR, syscall.ELOOP, syscall.ENAMETOOLONG:
		return true
	}
	return false
}

// setContentType sets the file's type; an unknown type removes the header
// (martian sets it to "", which fasthttp cannot send).
func setContentType(resp *fasthttp.Response, ct string) {
	if ct == "" {
		resp.Header.SetNoDefaultContentType(true)
		resp.Header.SetContentTypeBytes(nil)
		return
	}
	resp.Header.SetContentType(ct)
}

type byteRange struct{ start, end int64 }

// serveRanges answers a Range request as martian's static modifier parses
// it (including its TrimLeft of the characters of "bytes="), with the
// safety bounds of the comment at the top of this file.
func (m *staticModifier) serveRanges(resp *fasthttp.Response, f *os.File, rh string, size int64, contentType string) error {
	rh = strings.ToLower(rh)
	var ranges []byteRange
	var total int64
	for _, rng := range strings.Split(strings.TrimLeft(rh, "bytes="), ",") {
		if strings.HasSuffix(rng, "-") {
			rng += strconv.FormatInt(size-1, 10)
		}
		rs := strings.Split(rng, "-")
		if len(rs) != 2 {
			resp.SetStatusCode(fasthttp.StatusRequestedRangeNotSatisfiable)
			return nil
		}
		start, err := strconv.ParseInt(strings.TrimSpace(rs[0]), 10, 64)
		if err != nil {
			return fmt.Errorf("static.Modifier: range: %w", err)
		}
		end, err := strconv.ParseInt(strings.TrimSpace(rs[1]), 10, 64)
		if err != nil {
			return fmt.Errorf("static.Modifier: range: %w", err)
		}
		if start > end || start >= size {
			resp.SetStatusCode(fasthttp.StatusRequestedRangeNotSatisfiable)
			return nil
		}
		end = min(end, size-1)
		total += end - start + 1
		ranges = append(ranges, byteRange{start, end})
	}
	if total > size || (m.maxBody > 0 && total > int64(m.maxBody)) {
		resp.SetStatusCode(fasthttp.StatusRequestedRangeNotSatisfiable)
		return nil
	}
	resp.SetStatusCode(fasthttp.StatusPartialContent)
	if len(ranges) == 1 {
		r := ranges[0]
		resp.ResetBody()
		if _, err := io.Copy(resp.BodyWriter(), io.NewSectionReader(f, r.start, r.end-r.start+1)); err != nil {
			return fmt.Errorf("static.Modifier: %w", err)
		}
		resp.Header.SetCanonical(hdrContentRange, contentRange(r, size))
		return nil
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, r := range ranges {
		h := make(textproto.MIMEHeader, 2)
		h.Set("Content-Type", contentType)
		h.Set("Content-Range", string(contentRange(r, size)))
		pw, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		if _, err := io.Copy(pw, io.NewSectionReader(f, r.start, r.end-r.start+1)); err != nil {
			return fmt.Errorf("static.Modifier: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return err
	}
	resp.SetBody(body.Bytes())
	resp.Header.SetContentType("multipart/byteranges; boundary=" + mw.Boundary())
	return nil
}

func contentRange(r byteRange, size int64) []byte {
	b := append([]byte("bytes "), strconv.FormatInt(r.start, 10)...)
	b = append(append(b, '-'), strconv.FormatInt(r.end, 10)...)
	return append(append(b, '/'), strconv.FormatInt(size, 10)...)
}
