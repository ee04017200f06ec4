package response

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/mmcdole/gofeed"
	"github.com/valyala/fastjson"
)

// decodeRSS is krakend-rss's decoder (encoding rss): the body is parsed by
// gofeed, the version KrakenD CE 2.12.1 uses, whose universal Feed covers
// RSS, Atom and JSON Feed, and the data is
// {"items", "author", "categories", "custom", "copyright", "description",
// "type", "language", "title", "published", "updated"} plus "img_url"
// when the feed has an image. KrakenD keeps gofeed's structs in its data
// and encoding/json writes them in field order with their omitempty rules,
// so the value is built by encoding/json too, and every object below the
// top level keeps its stored key order when rendered (a Go map's keys come
// out sorted anyway). is_collection does not apply, as in krakend-rss.
func (f *Formatter) decodeRSS(sl *slot, body []byte) (*fastjson.Value, error) {
	feed, err := gofeed.NewParser().Parse(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("decode rss: %w: %v", ErrSyntax, err)
	}
	data := map[string]any{
		"items":       feed.Items,
		"author":      feed.Author,
		"categories":  feed.Categories,
		"custom":      feed.Custom,
		"copyright":   feed.Copyright,
		"description": feed.Description,
		"type":        feed.FeedType,
		"language":    feed.Language,
		"title":       feed.Title,
		"published":   feed.Published,
		"updated":     feed.Updated,
	}
	if feed.Image != nil {
		data["img_url"] = feed.Image.URL
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("decode rss: %w: %v", ErrSyntax, err)
	}
	sl.buf = append(sl.buf[:0], b...)
	v, err := sl.p.ParseBytes(sl.buf)
	if err != nil {
		return nil, fmt.Errorf("decode rss: %w: %v", ErrSyntax, err)
	}
	o, _ := v.Object()
	o.Visit(func(_ []byte, c *fastjson.Value) { sl.keepOrder(c) })
	return v, nil
}

// keepOrder marks every object in v (v included) to render in stored key
// order.
func (sl *slot) keepOrder(v *fastjson.Value) {
	switch v.Type() {
	case fastjson.TypeObject:
		sl.ordered = append(sl.ordered, v)
		o, _ := v.Object()
		o.Visit(func(_ []byte, c *fastjson.Value) { sl.keepOrder(c) })
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, c := range a {
			sl.keepOrder(c)
		}
	}
}
