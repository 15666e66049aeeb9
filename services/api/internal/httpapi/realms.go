package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// The realm routes: each authenticates, decodes, and hands the principal to
// one service method, which decides what the caller may see and do.

func (h *Handlers) createRealm(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	var body wire.CreateRealmPayload
	if err := Decode(c.Body(), &body); err != nil {
		return err
	}
	out, err := h.svc.CreateRealm(c.UserContext(), p, body)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (h *Handlers) listRealms(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	out, err := h.svc.ListRealms(c.UserContext(), p, c.Query("cursor"), c.Query("limit"))
	return reply(c, out, err)
}

func (h *Handlers) getRealm(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	out, err := h.svc.GetRealm(c.UserContext(), p, c.Params("name"))
	return reply(c, out, err)
}

func (h *Handlers) patchRealm(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	var body wire.PatchRealmPayload
	if err := Decode(c.Body(), &body); err != nil {
		return err
	}
	out, err := h.svc.PatchRealm(c.UserContext(), p, c.Params("name"), body)
	return reply(c, out, err)
}

func (h *Handlers) transitionRealm(to wire.RealmState) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := h.authenticated(c)
		if err != nil {
			return err
		}
		out, err := h.svc.TransitionRealm(c.UserContext(), p, c.Params("name"), to)
		return reply(c, out, err)
	}
}

func (h *Handlers) deleteRealm(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	if err := h.svc.DeleteRealm(c.UserContext(), p, c.Params("name")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *Handlers) issueRealmKey(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	var body wire.IssueRealmKeyPayload
	if err := Decode(c.Body(), &body); err != nil {
		return err
	}
	out, err := h.svc.IssueRealmKey(c.UserContext(), p, c.Params("name"), body)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (h *Handlers) listRealmKeys(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	out, err := h.svc.ListRealmKeys(c.UserContext(), p, c.Params("name"))
	return reply(c, out, err)
}

func (h *Handlers) revokeRealmKey(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	if err := h.svc.RevokeRealmKey(c.UserContext(), p, c.Params("name"), c.Params("kid")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
