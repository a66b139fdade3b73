// A conversation's information panel: who archives it (client/archiver.ts), proven in
// the log, with the organisation's name, and whether the room's signed policy asks for
// each archive to go to every member's MSSanté address too.
import { type ArchiverNotice, archiverNotice } from "../client/archiver";
import type { RelaisClient } from "../client/client";
import { b64u } from "../e2ee/bytes";
import { t } from "../i18n";
import { h } from "./dom";

// One answer per room and archiver key; the panel is drawn again on every change.
const notices = new Map<string, ArchiverNotice | "loading">();
let latest: { line: HTMLElement; key: string } | null = null;

function describe(notice: ArchiverNotice | "loading" | undefined): string {
  if (!notice || notice === "loading") return "…";
  return notice.proven ? t("archivedByOrganisation", { name: notice.name, structure: notice.structureId }) : t("archiverRefused", { reason: notice.reason });
}

export function roomInfo(client: RelaisClient, roomId: number): HTMLElement {
  const archiver = client.room(roomId)?.state.archiver ?? null;
  const line = h("p", { id: "archiver", class: "status" }, archiver ? "…" : t("notArchived"));
  if (archiver) {
    const key = `${roomId}/${archiver.nationalId}/${archiver.device}/${b64u(archiver.signKey)}`;
    latest = { line, key };
    const known = notices.get(key);
    line.textContent = describe(known);
    if (known && known !== "loading" && !known.proven) line.setAttribute("role", "alert");
    if (!known) {
      notices.set(key, "loading");
      void archiverNotice(client.log, client.api, archiver)
        .catch((error: unknown): ArchiverNotice => ({ proven: false, reason: String(error) }))
        .then((notice) => {
          notices.set(key, notice);
          if (latest?.key === key) {
            latest.line.textContent = describe(notice);
            if (!notice.proven) latest.line.setAttribute("role", "alert");
          }
        });
    }
  }
  const toMembers = archiver && client.room(roomId)?.state.policy.archive_to_members === true;
  const recipients = toMembers ? [h("p", { id: "archive-recipients", class: "status" }, t("archiveToMembers"))] : [];
  return h("details", { id: "room-info", class: "room-info" }, h("summary", {}, t("roomInfo")), line, ...recipients);
}
