// One téléexpertise opened: what this device verified of it (teleexpertise/verify.ts),
// the request's patient, question and photos, the clarifications, the answer with its
// PDF to open or download, the events refused with their reason, and the steps this
// practitioner may take now (accept, decline, ask, answer a question, write the report,
// cancel, close).
import { checkDescriptor, type Descriptor, fetchAttachment, AttachmentApi } from "../../attachments";
import type { RelaisClient } from "../../client/client";
import type { JsonObject } from "../../e2ee/canonical";
import { language } from "../../i18n";
import type { CaseSummary } from "../../teleexpertise/cases";
import { eventOf, type VerifiedCase } from "../../teleexpertise/verify";
import { h } from "../dom";
import { type TeleKey, tt } from "./strings";

export interface CaseActions {
  busy: boolean;
  step(action: string, fields: JsonObject): void;
  report(answer: string, structureId: string, structureName: string): void;
  custodian: { name: string; structureId: string } | null; // the room's archiver's structure, when proven
  savedStructure: { id: string; name: string };
  openFile(descriptor: Descriptor, download: boolean): void;
  photoUrl(descriptor: Descriptor): string | null; // decrypted here, once loaded
  drafts: Map<string, string>; // what is typed in the case's fields, kept across re-renders
  picked: Map<string, File[]>; // photos chosen for a clarification answer, by question id
  answer(questionId: string, text: string): void;
}

/** A text field whose content survives the screen being drawn again. */
function typed<T extends HTMLInputElement | HTMLTextAreaElement>(element: T, drafts: Map<string, string>, initial = ""): T {
  element.value = drafts.get(element.id) ?? initial;
  element.addEventListener("input", () => drafts.set(element.id, element.value));
  return element;
}

function when(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

function photos(list: JsonObject[], actions: CaseActions, id: string): HTMLElement | null {
  if (list.length === 0) return null;
  return h(
    "ul",
    { class: "te-files", id },
    list.map((item) => {
      let descriptor: Descriptor;
      try {
        descriptor = checkDescriptor(item, true);
      } catch {
        return h("li", {}, tt("fileUnreadable"));
      }
      const label = descriptor.name ?? descriptor.mime;
      const preview = descriptor.mime.startsWith("image/") ? actions.photoUrl(descriptor) : null;
      return h(
        "li",
        {},
        preview ? h("img", { src: preview, alt: label, class: "te-photo" }) : null,
        h("button", { type: "button", class: "te-open-file", onclick: () => actions.openFile(descriptor, false) }, `${tt("openFile")} ${label}`),
      );
    }),
  );
}

export function caseView(client: RelaisClient, summary: CaseSummary, found: VerifiedCase, actions: CaseActions): HTMLElement {
  const room = summary.room;
  const mine = summary.requerant === client.nationalId ? "requerant" : "requis";
  const request = found.request;
  const report = eventOf(found, "report");
  const patient = request?.patient as JsonObject | undefined;
  const lines: Node[] = [h("p", {}, `${tt("state")} : `, h("strong", { id: "te-state" }, tt(summary.state as TeleKey)), ` · ${tt("due")} ${when(summary.deadline)}`)];
  if (found.refused.length > 0) {
    lines.push(
      h(
        "div",
        { role: "alert", id: "te-refused", class: "te-refused" },
        h("p", {}, tt("refusedEvents")),
        h("ul", {}, found.refused.map((r) => h("li", { "data-code": r.code }, `${r.code} (${r.type || "?"}) : ${language() === "en" ? r.english : r.french}`))),
      ),
    );
  }
  if (request && patient) {
    lines.push(
      h("p", { id: "te-patient" }, `${tt("patient")} : ${String(patient.birth_family_name)} ${(patient.birth_given_names as string[]).join(" ")}, ${String(patient.birth_date)} (${String(patient.status)})`),
      h("p", {}, `${tt("reason")} : ${String(request.reason)}`),
      h("p", { id: "te-question" }, `${tt("question")} : ${String(request.question)}`),
      h("p", {}, `${(request.attachments as JsonObject[]).length} ${tt("attachments")}`),
    );
    if (request.clinical_data) lines.push(h("p", {}, `${tt("clinical")} : ${String(request.clinical_data)}`));
    const files = photos(request.attachments as JsonObject[], actions, "te-request-files");
    if (files) lines.push(files);
    // The request as a PDF, when a structure keeps its documents (§12.8).
    const pdf = (request.documents as JsonObject[]).find((d) => d.mime === "application/pdf");
    if (pdf) {
      const descriptor = checkDescriptor(pdf, true);
      lines.push(h("p", { class: "te-request-documents" }, h("button", { type: "button", id: "te-download-request-pdf", onclick: () => actions.openFile(descriptor, true) }, tt("downloadRequest"))));
    }
  }
  const answers = new Map(found.events.filter((e) => e.action === "clarification_answer").map((e) => [String(e.content.question_id), e.content]));
  const questions = found.events.filter((e) => e.action === "clarification_request");
  if (questions.length > 0) {
    lines.push(
      h(
        "ol",
        { id: "te-clarifications", class: "te-clarifications" },
        questions.map((q) => {
          const id = String(q.content.question_id);
          const reply = answers.get(id);
          const item = h("li", { "data-question": id }, h("p", { class: "te-asked" }, `${tt("clarificationQuestion")} : ${String(q.content.question)}`));
          if (reply) {
            item.append(h("p", { class: "te-replied" }, `${tt("clarificationAnswer")} : ${String(reply.answer)}`));
            const files = photos(reply.attachments as JsonObject[], actions, `te-reply-files-${id}`);
            if (files) item.append(files);
          }
          else if (mine === "requerant" && found.openQuestions.has(id) && (summary.state === "requested" || summary.state === "accepted")) {
            const box = typed(h("textarea", { id: `te-reply-${id}`, class: "te-reply", maxlength: 20000, rows: 3, "aria-label": tt("clarificationAnswer") }), actions.drafts);
            const chosen = actions.picked.get(id) ?? [];
            const picker = h("input", { type: "file", id: `te-reply-photos-${id}`, accept: "image/*", multiple: true }) as HTMLInputElement;
            picker.addEventListener("change", () => actions.picked.set(id, [...(picker.files ?? [])].slice(0, 10)));
            item.append(
              box,
              h("p", { class: "field" }, h("label", { for: `te-reply-photos-${id}` }, tt("photos")), picker, chosen.length ? h("span", {}, ` ${chosen.length} ${tt("attachments")}`) : null),
              h("button", { type: "button", disabled: actions.busy, onclick: () => actions.answer(id, box.value.trim()) }, tt("sendClarificationAnswer")),
            );
          }
          return item;
        }),
      ),
    );
  }
  if (report) {
    lines.push(h("p", { id: "te-answer" }, `${tt("answer")} : ${String(report.answer)}`));
    const pdf = (report.documents as JsonObject[]).find((d) => d.mime === "application/pdf");
    if (pdf) {
      const descriptor = checkDescriptor(pdf, true);
      lines.push(
        h(
          "p",
          { class: "te-report-files" },
          h("button", { type: "button", id: "te-open-pdf", onclick: () => actions.openFile(descriptor, false) }, tt("openReport")),
          " ",
          h("button", { type: "button", id: "te-download-pdf", onclick: () => actions.openFile(descriptor, true) }, tt("downloadReport")),
        ),
      );
    }
  }
  const buttons: Node[] = [];
  const act = (label: TeleKey, action: string, fields: () => JsonObject) => h("button", { type: "button", disabled: actions.busy, onclick: () => actions.step(action, fields()) }, tt(label));
  const active = summary.state === "requested" || summary.state === "accepted";
  if (mine === "requis" && summary.state === "requested") {
    const reason = typed(h("input", { id: "te-decline-reason", maxlength: 2000 }), actions.drafts);
    buttons.push(act("accept", "accept", () => ({ note: "" })), h("p", { class: "field" }, h("label", { for: "te-decline-reason" }, tt("declineReason")), reason), act("decline", "decline", () => ({ reason: reason.value })));
  }
  if (mine === "requis" && active) {
    const question = typed(h("textarea", { id: "te-ask", maxlength: 5000, rows: 2 }), actions.drafts);
    buttons.push(h("p", { class: "field" }, h("label", { for: "te-ask" }, tt("askClarification")), question), act("sendClarification", "clarification_request", () => ({ question: question.value.trim() })));
  }
  if (mine === "requis" && summary.state === "accepted") buttons.push(reportForm(actions));
  if (mine === "requerant" && active) buttons.push(act("cancel", "cancel", () => ({ reason: "" })));
  if (summary.state === "answered") buttons.push(act("close", "close", () => ({ note: "" })));
  return h("div", { class: "te-case", "data-room": room }, ...lines, ...buttons);
}

function reportForm(actions: CaseActions): HTMLElement {
  const answer = typed(h("textarea", { id: "te-report-text", maxlength: 20000, rows: 8, required: true }), actions.drafts);
  const keeper: Node[] = [];
  const structureId = typed(h("input", { id: "te-structure-id", maxlength: 64 }), actions.drafts, actions.savedStructure.id);
  const structureName = typed(h("input", { id: "te-structure-name", maxlength: 256 }), actions.drafts, actions.savedStructure.name);
  if (actions.custodian) keeper.push(h("p", { id: "te-custodian" }, `${tt("custodian")} : ${actions.custodian.name} (${actions.custodian.structureId})`));
  else keeper.push(h("p", { class: "field" }, h("label", { for: "te-structure-id" }, tt("structureId")), structureId), h("p", { class: "field" }, h("label", { for: "te-structure-name" }, tt("structureName")), structureName));
  return h(
    "form",
    {
      id: "te-report-form",
      class: "te-form",
      onsubmit: (event: Event) => {
        event.preventDefault();
        actions.report(answer.value.trim(), structureId.value, structureName.value);
      },
    },
    h("p", { class: "field" }, h("label", { for: "te-report-text" }, tt("reportText")), answer),
    ...keeper,
    h("p", { class: "te-note" }, tt("reportNote")),
    h("button", { type: "submit", disabled: actions.busy }, tt("sendReport")),
  );
}

/** Open (a new tab) or download a file of the case, decrypted here. */
export async function openCaseFile(client: RelaisClient, descriptor: Descriptor, download: boolean): Promise<void> {
  const data = await fetchAttachment(new AttachmentApi(client.data.token), descriptor);
  const url = URL.createObjectURL(new Blob([data as Uint8Array<ArrayBuffer>], { type: descriptor.mime }));
  if (download) {
    const link = h("a", { href: url, download: descriptor.name ?? "document" }) as HTMLAnchorElement;
    document.body.append(link);
    link.click();
    link.remove();
  } else {
    window.open(url, "_blank", "noopener");
  }
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
