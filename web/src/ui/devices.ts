// The practitioner's devices, with revocation of a lost one.
import type { RelaisClient } from "../client/client";
import { t } from "../i18n";
import { alertsView } from "./alerts";
import { header } from "./chrome";
import { h } from "./dom";

export interface DeviceRow {
  device: number;
  name: string;
  current: boolean;
  revoked: boolean;
  created_at: string;
}

/** ``devices``: null when the server could not list them (the session ended: ``banner``
 * says so and offers to log in again; else ``error`` says why). */
export function devicesView(client: RelaisClient, devices: DeviceRow[] | null, back: () => void, revoke: (device: number) => void, link: () => void, banner: Node | null, error: string | null): HTMLElement {
  const ended = client.session !== "active";
  return h(
    "section",
    { class: "screen devices", "aria-labelledby": "screen-title" },
    header(t("devices"), back),
    banner,
    alertsView(client, null),
    error ? h("p", { role: "alert", class: "error", id: "devices-error" }, error) : null,
    ended ? h("p", { id: "devices-unavailable" }, t("devicesUnavailable")) : h("p", {}, h("button", { type: "button", id: "link-device", onclick: link }, t("linkDevice"))),
    devices
      ? h(
          "ul",
          { class: "room-list", id: "device-list" },
          devices.map((d) =>
            h(
              "li",
              { class: "room", "data-device": d.device },
              h("span", { class: "room-name" }, `#${d.device} ${d.name}${d.current ? ` (${t("thisDevice")})` : ""}${d.revoked ? ` — ${t("revoked")}` : ""}`),
              h("span", { class: "room-when" }, t("created", { when: new Date(d.created_at).toLocaleString(document.documentElement.lang) })),
              !d.current && !d.revoked && !ended ? h("button", { type: "button", class: "secondary", "aria-label": `${t("revoke")} #${d.device}`, onclick: () => revoke(d.device) }, t("revoke")) : null,
            ),
          ),
        )
      : null,
  );
}

export interface LinkApproveActions {
  back(): void;
  check(code: string): void;
  approve(): void;
}

export function linkApproveView(actions: LinkApproveActions, found: { device: number; name: string } | null, error: string | null): HTMLElement {
  const input = h("input", { id: "link-code", autocomplete: "off", required: true, maxlength: 120 });
  return h(
    "section",
    { class: "screen link", "aria-labelledby": "screen-title" },
    header(t("linkDevice"), actions.back),
    error ? h("p", { role: "alert", class: "error" }, error) : null,
    h(
      "form",
      {
        class: "card",
        onsubmit: (event: Event) => {
          event.preventDefault();
          actions.check(input.value);
        },
      },
      h("p", { class: "field" }, h("label", { for: "link-code" }, t("linkCodeLabel")), input),
      h("button", { type: "submit", id: "link-check" }, t("linkCheck")),
    ),
    found ? h("p", {}, h("button", { type: "button", id: "link-approve", onclick: actions.approve }, t("approveDevice", { device: found.device, name: found.name }))) : null,
  );
}

export function linkWaitView(shortCode: string, qr: HTMLElement, recover: () => void): HTMLElement {
  return h(
    "section",
    { class: "screen link", "aria-labelledby": "screen-title" },
    header(t("linkWaitTitle"), null),
    h("p", {}, t("linkWaitText")),
    h("p", { class: "recovery-code card", id: "link-short-code" }, shortCode),
    h("div", {}, qr),
    h("p", {}, t("recoverOffer")),
    h("p", {}, h("button", { type: "button", class: "secondary", id: "recover-start", onclick: recover }, t("recoverButton"))),
  );
}
