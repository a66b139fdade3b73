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

export function devicesView(client: RelaisClient, devices: DeviceRow[], back: () => void, revoke: (device: number) => void): HTMLElement {
  return h(
    "section",
    { class: "screen devices", "aria-labelledby": "screen-title" },
    header(t("devices"), back),
    alertsView(client, null),
    h(
      "ul",
      { class: "room-list", id: "device-list" },
      devices.map((d) =>
        h(
          "li",
          { class: "room", "data-device": d.device },
          h("span", { class: "room-name" }, `#${d.device} ${d.name}${d.current ? ` (${t("thisDevice")})` : ""}${d.revoked ? ` — ${t("revoked")}` : ""}`),
          h("span", { class: "room-when" }, t("created", { when: new Date(d.created_at).toLocaleString(document.documentElement.lang) })),
          !d.current && !d.revoked ? h("button", { type: "button", class: "secondary", "aria-label": `${t("revoke")} #${d.device}`, onclick: () => revoke(d.device) }, t("revoke")) : null,
        ),
      ),
    ),
  );
}
