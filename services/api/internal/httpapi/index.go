package httpapi

import (
	"html/template"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// indexLink is one entry of GET /: where to go from the root of the api.
type indexLink struct {
	Href  string `json:"href"`
	Title string `json:"title"`
}

// indexLinks are the api's entry points, for a newcomer who opens the root.
// They are public addresses only: nothing here reveals configuration.
var indexLinks = map[string]indexLink{
	"console": {Href: "/ui", Title: "the web console (operator key login)"},
	"openapi": {Href: "/openapi.json", Title: "the OpenAPI contract of every route"},
	"health":  {Href: "/health", Title: "liveness"},
	"ready":   {Href: "/ready", Title: "readiness (Redis answers)"},
	"metrics": {Href: "/metrics", Title: "Prometheus metrics"},
}

var indexOrder = []string{"console", "openapi", "health", "ready", "metrics"}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Yggdrasil api</title></head>
<body><h1>Yggdrasil api</h1><ul>
{{range .}}<li><a href="{{.Href}}">{{.Href}}</a>: {{.Title}}</li>
{{end}}</ul></body></html>
`))

// index answers GET /: JSON links by default, a tiny page of links when the
// client (a browser) prefers HTML.
func (h *Handlers) index(c *fiber.Ctx) error {
	if c.Accepts(fiber.MIMEApplicationJSON, fiber.MIMETextHTML) == fiber.MIMETextHTML {
		links := make([]indexLink, 0, len(indexOrder))
		for _, k := range indexOrder {
			links = append(links, indexLinks[k])
		}
		var b strings.Builder
		if err := indexPage.Execute(&b, links); err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		return c.SendString(b.String())
	}
	return c.JSON(fiber.Map{"name": "yggdrasil-api", "links": indexLinks})
}
