// The téléexpertise screens: the requests sent and received with their state and
// deadline (as the server lists them), a request opened (its content decrypted on this
// device), the requis' accept and decline, the close and cancel, and the requérant's
// request form. The steps themselves are in teleexpertise/cases.ts.
import "./teleexpertise.css";
import type { Api } from "../../api/http";
import { ApiError } from "../../api/errors";
import { AttachmentApi, AttachmentError, type Descriptor, fetchAttachment, processPhoto, sendPhoto } from "../../attachments";
import type { RelaisClient, TeleexpertiseFrame } from "../../client/client";
import { archiverNotice } from "../../client/archiver";
import type { JsonObject } from "../../e2ee/canonical";
import { errorText } from "../../i18n";
import { header } from "../chrome";
import { h } from "../dom";
import { acceptEvent, cancelEvent, type CaseSummary, clarificationAnswerEvent, clarificationRequestEvent, closeEvent, createCaseRoom, declineEvent, listCases, professional, requestEvent, sendRequest, sendStep, type State, StepError } from "../../teleexpertise/cases";
import { type IdentityStatus, OIDS, PatientError, patientIdentity, STATUSES } from "../../teleexpertise/patient";
import { type TeleKey, tt } from "./strings";
import { requestForm } from "./form";
import { ledgerView } from "./ledger";
import { type ActCode, billingCheck, type LedgerEntry, limitWarning, readLedger, recordAct, zoneOfPostcode } from "../../teleexpertise/ledger";
import { unb64u } from "../../e2ee/bytes";
import { eventOf, nextState, roleOf, verifyCase, type VerifiedCase } from "../../teleexpertise/verify";
import { checkOrganisation, localDay, sendReport } from "../../teleexpertise/report";
import type { Organisation } from "../../teleexpertise/cda";
import { caseView, openCaseFile } from "./caseview";
import { archiverDevice } from "../../teleexpertise/archiver";
import { archiverCustodian, withRequestDocuments } from "../../teleexpertise/request";

const STRUCTURE_KEY = "relais.teleexpertise.structure";
const ARCHIVER_KEY = "relais.teleexpertise.archiver"; // the organisation named on the last request

type Tab = { name: "sent" } | { name: "received" } | { name: "new" } | { name: "ledger" } | { name: "case"; room: number };

/** The screen is drawn again whenever an envelope arrives: a field being typed in is
 * moved into the new tree (or, in a case, drawn anew with its typed text), which
 * drops its focus. Give it back, with its selection,
 * once the new tree is in place (a microtask: before any keystroke is handled). */
function keepFocus(): void {
  const active = document.activeElement;
  if (!(active instanceof HTMLInputElement || active instanceof HTMLTextAreaElement) || !active.closest("#teleexpertise")) return;
  let start: number | null = null;
  let end: number | null = null;
  try {
    start = active.selectionStart;
    end = active.selectionEnd;
  } catch {
    // a date or checkbox input has no text selection
  }
  const id = active.id;
  queueMicrotask(() => {
    // The same element, moved; or, in a case, the one drawn anew with the same id.
    const next = active.isConnected ? active : id ? document.getElementById(id) : null;
    if (!(next instanceof HTMLInputElement || next instanceof HTMLTextAreaElement) || document.activeElement === next) return;
    next.focus({ preventScroll: true });
    if (start !== null && end !== null) next.setSelectionRange(start, end);
  });
}

export function describeError(error: unknown): string {
  if (error instanceof ApiError || error instanceof AttachmentError) return errorText(error);
  if (error instanceof StepError || error instanceof PatientError) return `${error.code}: ${errorText({ code: error.code, message: error.english, messageFr: error.french })}`;
  return errorText({ code: "internal", message: String(error), messageFr: String(error) });
}

function when(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

export class TeleexpertiseScreen {
  private tab: Tab = { name: "sent" };
  private sent: CaseSummary[] = [];
  private received: CaseSummary[] = [];
  private message: string | null = null;
  private busy = false;
  private loading = false;
  private form: HTMLElement | null = null;
  private ledger: LedgerEntry[] = [];
  private zone: "metropole" | "drom" | null = null;
  private warned: { key: string; resume: () => void } | null = null; // a step beyond the yearly limit, waiting for "send anyway"
  private readonly reporting = new Set<number>(); // rooms whose report this screen is sending (it records their act)
  private readonly picked = new Map<string, File[]>();
  private readonly drafts = new Map<string, string>(); // field id → text typed in a case
  private photos = new Map<string, string | null>(); // blob id → object URL of the decrypted photo
  private custodians = new Map<number, { name: string; structureId: string } | null>();
  private readonly stop: () => void;

  constructor(
    private readonly client: RelaisClient,
    private readonly api: Api,
    private readonly back: () => void,
    private readonly render: () => void,
  ) {
    // A step of the other side arrives as an envelope: read the states again.
    const stopChanges = client.onChange(() => {
      if (document.getElementById("teleexpertise")) void this.reload();
      else this.stop(); // left by the browser's back button
    });
    // The server's live frame of a step (§12.4), an expiry included: a hint shown at
    // once; the list is read again and the case still comes from verified events.
    const stopFrames = client.onTeleexpertiseFrame((frame) => this.hint(frame));
    this.stop = () => {
      stopChanges();
      stopFrames();
    };
    void this.reload();
  }

  close(): void {
    this.stop();
    for (const url of this.photos.values()) if (url) URL.revokeObjectURL(url);
  }

  /** A ``teleexpertise`` frame: the case's state and deadline as the server says them. */
  private hint(frame: TeleexpertiseFrame): void {
    if (!document.getElementById("teleexpertise")) return;
    for (const c of [...this.sent, ...this.received]) {
      if (c.room !== frame.room) continue;
      c.state = frame.state as State;
      c.deadline = new Date(frame.deadline).toISOString();
      c.state_changed_at = new Date(frame.at).toISOString();
    }
    this.render();
    void this.reload();
  }

  async reload(): Promise<void> {
    if (this.loading) return;
    this.loading = true;
    try {
      [this.sent, this.received] = await Promise.all([listCases(this.api, "requerant"), listCases(this.api, "requis")]);
      const secret = unb64u(this.client.data.accountSecret);
      this.ledger = await readLedger(this.api, secret, this.client.nationalId);
      await this.recordMyActs(secret);
    } catch (error) {
      this.message = describeError(error);
    } finally {
      this.loading = false;
    }
    this.render();
  }

  /** This practitioner's act once the verified report of a case exists: the
   * requérant's RQD when it arrives; the requis' TE2 is recorded right after their report
   * is sent, and again here if that failed (one act per case: the server keeps one). */
  private async recordMyActs(secret: Uint8Array): Promise<void> {
    const cases: [CaseSummary, ActCode][] = [...this.sent.map((c): [CaseSummary, ActCode] => [c, "RQD"]), ...this.received.map((c): [CaseSummary, ActCode] => [c, "TE2"])];
    for (const [c, code] of cases) {
      if (c.state !== "answered" && c.state !== "closed") continue;
      if (this.reporting.has(c.room) || this.ledger.some((e) => e.room === c.room && e.code === code)) continue;
      const found = this.verified(c.room);
      const report = eventOf(found, "report");
      if (!found.request || !report) continue;
      const entry = await recordAct(this.api, secret, this.client.nationalId, { code, room: c.room, patient: found.request.patient as JsonObject, requerant: c.requerant, requis: c.requis, zone: await this.myZone(), day: localDay(new Date(String(report.reported_at))) });
      this.ledger.push(entry);
    }
  }

  private async myZone(): Promise<"metropole" | "drom"> {
    if (this.zone === null) {
      const me = await this.api.get<{ postcode?: string | null }>(`directory/practitioners/${encodeURIComponent(this.client.nationalId)}`);
      this.zone = zoneOfPostcode(me.postcode ?? "");
    }
    return this.zone;
  }

  /** What this device verified of the case in ``room`` (§12.5). */
  verified(room: number): VerifiedCase {
    const state = this.client.room(room)?.state;
    return verifyCase(room, { kind: state?.kind ?? "", members: state ? [...state.members.keys()] : [] }, this.client.messages(room));
  }

  /** The yearly-limit check before a request (RQD) or an acceptance (TE2): a step
   * beyond the limit waits for the user's "send anyway" (the act is then not billable). */
  private async withinLimit(key: string, code: ActCode, patient: JsonObject, resume: () => void): Promise<boolean> {
    if (this.warned?.key === key) {
      this.warned = null;
      return true;
    }
    const check = await billingCheck(this.api, unb64u(this.client.data.accountSecret), code, await this.myZone(), localDay(new Date()), patient);
    if (check.count < check.limit) return true;
    this.warned = { key, resume };
    this.message = describeError(limitWarning(check));
    this.busy = false;
    this.render();
    return false;
  }

  private go(tab: Tab): void {
    this.tab = tab;
    this.message = null;
    this.warned = null;
    this.render();
    void this.reload();
  }

  view(): HTMLElement {
    keepFocus();
    const tabs = h(
      "nav",
      { class: "te-tabs" },
      ...(["sent", "received", "new", "ledger"] as const).map((name) =>
        h("button", { type: "button", "aria-pressed": String(this.tab.name === name), onclick: () => this.go({ name }) }, tt(name === "new" ? "newRequest" : name)),
      ),
    );
    let body: Node;
    switch (this.tab.name) {
      case "sent":
        body = this.listView(this.sent, "requerant");
        break;
      case "received":
        body = this.listView(this.received, "requis");
        break;
      case "new":
        // Kept across re-renders: what the user typed stays.
        this.form ??= requestForm((form) => void this.submit(form), localStorage.getItem(ARCHIVER_KEY) ?? "");
        this.form.querySelector("button[type=submit]")?.toggleAttribute("disabled", this.busy);
        body = this.form;
        break;
      case "ledger":
        body = ledgerView(this.ledger);
        break;
      case "case":
        body = this.caseView(this.tab.room);
        break;
    }
    return h(
      "section",
      { class: "screen teleexpertise", id: "teleexpertise", "aria-labelledby": "screen-title" },
      header(tt("title"), () => {
        this.close();
        this.back();
      }),
      tabs,
      this.message ? h("p", { role: "alert", id: "te-message" }, this.message) : null,
      this.warned && this.message ? h("button", { type: "button", id: "te-send-anyway", onclick: () => this.warned?.resume() }, tt("sendAnyway")) : null,
      body,
    );
  }

  private listView(cases: CaseSummary[], role: "requerant" | "requis"): HTMLElement {
    if (cases.length === 0) return h("p", {}, tt("none"));
    return h(
      "ul",
      { class: "room-list", id: "te-cases" },
      cases.map((c) => {
        const other = role === "requerant" ? c.requis : c.requerant;
        const found = this.verified(c.room);
        const request = found.request;
        return h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: "room", "data-room": c.room, "data-state": c.state, "data-refused": found.refused.length, onclick: () => this.go({ name: "case", room: c.room }) },
            h("span", { class: "room-name" }, request ? String(request.reason) : this.client.roomTitle(c.room)),
            h("span", { class: "room-when" }, `${tt(role === "requerant" ? "to" : "from")} ${this.client.nameOf(other)} · `, h("strong", { class: "te-state" }, tt(c.state as TeleKey)), ` · ${tt("due")} ${when(c.deadline)}`),
          ),
        );
      }),
    );
  }

  private caseView(room: number): HTMLElement {
    const summary = [...this.sent, ...this.received].find((c) => c.room === room);
    if (!summary) return h("p", {}, "…");
    if (!this.custodians.has(room)) {
      this.custodians.set(room, null);
      void this.findCustodian(room);
    }
    let saved = { id: "", name: "" };
    try {
      saved = { id: "", name: "", ...(JSON.parse(localStorage.getItem(STRUCTURE_KEY) ?? "{}") as { id?: string; name?: string }) } as { id: string; name: string };
    } catch {
      // an unreadable saved structure is typed again
    }
    return caseView(this.client, summary, this.verified(room), {
      busy: this.busy,
      step: (action, fields) => void this.step(room, action, fields),
      report: (answer, id, name) => void this.report(room, answer, id, name),
      custodian: this.custodians.get(room) ?? null,
      savedStructure: saved,
      openFile: (descriptor: Descriptor, download: boolean) => void this.openFile(descriptor, download),
      photoUrl: (descriptor: Descriptor) => this.photoUrl(descriptor),
      drafts: this.drafts,
      picked: this.picked,
      answer: (questionId, text) => void this.answer(room, questionId, text),
    });
  }

  /** A photo of the case, downloaded, checked and decrypted on first display. */
  private photoUrl(descriptor: Descriptor): string | null {
    if (!this.photos.has(descriptor.blob)) {
      this.photos.set(descriptor.blob, null);
      void fetchAttachment(new AttachmentApi(this.client.data.token), descriptor)
        .then((data) => {
          this.photos.set(descriptor.blob, URL.createObjectURL(new Blob([data as Uint8Array<ArrayBuffer>], { type: descriptor.mime })));
          this.render();
        })
        .catch((error: unknown) => {
          this.message = describeError(error);
          this.render();
        });
    }
    return this.photos.get(descriptor.blob) ?? null;
  }

  /** The structure that keeps the documents: the organisation whose archiver the room's
   * verified state names, once the log proves it (uploads.custodian_of in the SDK). */
  private async findCustodian(room: number): Promise<void> {
    const archiver = this.client.room(room)?.state.archiver;
    if (!archiver) return;
    try {
      const notice = await archiverNotice(this.client.log, this.api, archiver);
      if (notice.proven) {
        this.custodians.set(room, { name: notice.name, structureId: notice.structureId });
        this.render();
      }
    } catch {
      // not proven: the requis names the structure
    }
  }

  private async openFile(descriptor: Descriptor, download: boolean): Promise<void> {
    try {
      await openCaseFile(this.client, descriptor, download || !(descriptor.mime === "application/pdf" || descriptor.mime.startsWith("image/")));
    } catch (error) {
      this.message = describeError(error);
      this.render();
    }
  }

  /** This practitioner's step: checked against the verified case first (nothing is
   * sent when the lifecycle table refuses it), then sent with its event. */
  private async step(room: number, action: string, fields: JsonObject): Promise<void> {
    this.busy = true;
    this.render();
    try {
      const found = this.verified(room);
      if (!found.request) throw new StepError("unknown_teleexpertise", "This room has no téléexpertise known to this device.", "Ce salon n'a pas de téléexpertise connue de cet appareil.");
      nextState(found.state, action, roleOf(found.request, this.client.nationalId));
      if (action === "accept" && !(await this.withinLimit(`accept:${room}`, "TE2", found.request.patient as JsonObject, () => void this.step(room, action, fields)))) return;
      const content = this.content(action, fields, found);
      await sendStep(this.client, this.api, room, action, content);
      for (const id of ["te-ask", "te-decline-reason", `te-reply-${String(fields.question_id ?? "")}`]) this.drafts.delete(id);
      this.message = null;
    } catch (error) {
      this.message = describeError(error);
    } finally {
      this.busy = false;
    }
    await this.reload();
  }

  private content(action: string, fields: JsonObject, found: VerifiedCase): JsonObject {
    switch (action) {
      case "accept":
        return acceptEvent(String(fields.note ?? ""));
      case "decline":
        return declineEvent(String(fields.reason ?? ""));
      case "cancel":
        return cancelEvent(String(fields.reason ?? ""));
      case "close":
        return closeEvent(String(fields.note ?? ""));
      case "clarification_request":
        return clarificationRequestEvent(String(fields.question ?? ""));
      default:
        throw new StepError("bad_field", `Unknown step ${action}.`, `Étape inconnue ${action}.`);
    }
  }

  /** The requérant's answer to an open question, with photos (cleaned as in a
   * conversation, uploaded with the answer's message id, withdrawn if it is refused). */
  private async answer(room: number, questionId: string, text: string): Promise<void> {
    this.busy = true;
    this.message = tt("sending");
    this.render();
    const files = new AttachmentApi(this.client.data.token);
    const uploaded: Descriptor[] = [];
    try {
      const found = this.verified(room);
      if (!found.request) throw new StepError("unknown_teleexpertise", "This room has no téléexpertise known to this device.", "Ce salon n'a pas de téléexpertise connue de cet appareil.");
      nextState(found.state, "clarification_answer", roleOf(found.request, this.client.nationalId));
      if (!found.openQuestions.has(questionId)) throw new StepError("transition_refused", "This clarification question is not open.", "Cette demande de précision n'est pas ouverte.");
      clarificationAnswerEvent(questionId, text); // checked before any upload
      const chosen = this.picked.get(questionId) ?? [];
      const photos = await Promise.all(chosen.map((file) => processPhoto(file)));
      const messageId = crypto.randomUUID();
      for (const [index, photo] of photos.entries()) uploaded.push(await sendPhoto(files, photo, { room, messageId }, chosen[index]!.name.slice(0, 200) || undefined));
      await sendStep(this.client, this.api, room, "clarification_answer", clarificationAnswerEvent(questionId, text, uploaded), messageId);
      this.drafts.delete(`te-reply-${questionId}`);
      this.picked.delete(questionId);
      this.message = null;
    } catch (error) {
      for (const d of uploaded) await files.abortQuietly(d.blob);
      this.message = describeError(error);
    } finally {
      this.busy = false;
    }
    await this.reload();
  }

  private async report(room: number, answer: string, structureId: string, structureName: string): Promise<void> {
    this.busy = true;
    this.message = tt("reportBuilding");
    this.render();
    try {
      const found = this.verified(room);
      const proven = this.custodians.get(room);
      let custodian: Organisation;
      if (proven) custodian = { nationalId: proven.structureId, name: proven.name };
      else {
        custodian = checkOrganisation(structureId, structureName);
        localStorage.setItem(STRUCTURE_KEY, JSON.stringify({ id: custodian.nationalId, name: custodian.name }));
      }
      this.reporting.add(room);
      await sendReport(this.client, this.api, found, answer, custodian, (stage) => {
        this.message = tt(stage === "documents" ? "reportBuilding" : stage === "upload" ? "reportUploading" : stage === "send" ? "sending" : "reportAct");
        this.render();
      });
      this.drafts.delete("te-report-text");
      this.message = null;
    } catch (error) {
      this.message = describeError(error);
    } finally {
      this.busy = false;
      this.reporting.delete(room);
    }
    await this.reload();
  }

  private async submit(form: FormValues): Promise<void> {
    if (!form.consentGiven) {
      this.message = `consent_refused: ${tt("consentMissing")}`;
      this.render();
      return;
    }
    this.busy = true;
    this.message = tt("sending");
    this.render();
    const files = new AttachmentApi(this.client.data.token);
    const attachments: Descriptor[] = [];
    const documents: Descriptor[] = []; // the request's PDF and CDA, when a structure keeps them
    try {
      const patient = patientIdentity(form.patient);
      const requis = await professional(this.api, form.requis);
      const requerant = await professional(this.api, this.client.nationalId);
      // Checked before anything is created: the same checks run again with the files.
      requestEvent({ ...form, requis, requerant, patient, attachments: [] });
      if (!(await this.withinLimit(`request:${JSON.stringify(patient)}`, "RQD", patient, () => void this.submit(form)))) return;
      const archiver = form.archiver ? await archiverDevice(this.client.log, form.archiver) : null;
      // The organisation that archives the room keeps the request's documents.
      const custodian = archiver ? await archiverCustodian(this.client.log, this.api, archiver) : null;
      const photos = await Promise.all(form.photos.map((file) => processPhoto(file)));
      const room = await createCaseRoom(this.client, form.requis, form.reason, patient, archiver);
      localStorage.setItem(ARCHIVER_KEY, form.archiver);
      const messageId = crypto.randomUUID();
      for (const [index, photo] of photos.entries()) attachments.push(await sendPhoto(files, photo, { room, messageId }, form.photos[index]!.name.slice(0, 200) || undefined));
      const content = await withRequestDocuments(files, room, messageId, requestEvent({ ...form, requis, requerant, patient, attachments }), custodian, documents, (stage) => {
        this.message = tt(stage === "documents" ? "reportBuilding" : "reportUploading");
        this.render();
      });
      this.message = tt("sending");
      this.render();
      await sendRequest(this.client, this.api, room, messageId, content);
      this.message = null;
      this.form = null;
      this.tab = { name: "case", room };
    } catch (error) {
      // No request carries them: withdrawn (the server refuses to delete a blob whose
      // message it stored, so a call that failed after storing keeps its photos).
      for (const d of [...attachments, ...documents]) await files.abortQuietly(d.blob);
      this.message = describeError(error);
    } finally {
      this.busy = false;
    }
    await this.reload();
  }
}

export interface FormValues {
  requis: string;
  patient: {
    status: IdentityStatus;
    birthFamilyName: string;
    birthGivenNames: string[];
    birthDate: string;
    sex: "F" | "M" | "U";
    birthplace?: string;
    matricule?: string;
    oid?: string;
  };
  consentGiven: boolean;
  consent: { obtainedOn: string; method: "oral" | "written" | "electronic"; givenBy: "patient" | "legal_representative" };
  reason: string;
  question: string;
  clinicalData: string;
  urgency: "routine" | "urgent";
  deadline: Date;
  photos: File[];
  archiver: string; // org:IdNat_Struct whose archiver the room names, or ""
}

export { OIDS, STATUSES };
