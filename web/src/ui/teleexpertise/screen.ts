// The téléexpertise screens: the requests sent and received with their state and
// deadline (as the server lists them), a request opened (its content decrypted on this
// device), the requis' accept and decline, the close and cancel, and the requérant's
// request form. The steps themselves are in teleexpertise/cases.ts.
import "./teleexpertise.css";
import type { Api } from "../../api/http";
import { ApiError } from "../../api/errors";
import { AttachmentApi, AttachmentError, processPhoto, sendPhoto, type Descriptor } from "../../attachments";
import type { RelaisClient } from "../../client/client";
import type { JsonObject } from "../../e2ee/canonical";
import { errorText } from "../../i18n";
import { header } from "../chrome";
import { h } from "../dom";
import { acceptEvent, cancelEvent, type CaseSummary, closeEvent, createCaseRoom, declineEvent, listCases, professional, requestEvent, sendRequest, sendStep, StepError } from "../../teleexpertise/cases";
import { type IdentityStatus, OIDS, PatientError, patientIdentity, STATUSES } from "../../teleexpertise/patient";
import { type TeleKey, tt } from "./strings";
import { requestForm } from "./form";
import { ledgerView } from "./ledger";
import { type LedgerEntry, readLedger, recordAct, zoneOfPostcode } from "../../teleexpertise/ledger";
import { unb64u } from "../../e2ee/bytes";

type Tab = { name: "sent" } | { name: "received" } | { name: "new" } | { name: "ledger" } | { name: "case"; room: number };

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
  private readonly stop: () => void;

  constructor(
    private readonly client: RelaisClient,
    private readonly api: Api,
    private readonly back: () => void,
    private readonly render: () => void,
  ) {
    // A step of the other side arrives as an envelope: read the states again.
    this.stop = client.onChange(() => {
      if (document.getElementById("teleexpertise")) void this.reload();
      else this.stop(); // left by the browser's back button
    });
    void this.reload();
  }

  close(): void {
    this.stop();
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

  /** The requérant's RQD, once the report of a case of theirs has arrived (the requis'
   * device records the TE2 with its report, from the SDK). */
  private async recordMyActs(secret: Uint8Array): Promise<void> {
    for (const c of this.sent) {
      if (c.state !== "answered" && c.state !== "closed") continue;
      const request = this.requestOf(c.room);
      if (!request || !this.event(c.room, "report") || this.ledger.some((e) => e.room === c.room && e.code === "RQD")) continue;
      const me = await this.api.get<{ postcode?: string | null }>(`directory/practitioners/${this.client.nationalId}`);
      const today = new Date();
      const day = `${today.getFullYear()}-${String(today.getMonth() + 1).padStart(2, "0")}-${String(today.getDate()).padStart(2, "0")}`;
      const entry = await recordAct(this.api, secret, this.client.nationalId, { code: "RQD", room: c.room, patient: request.patient as JsonObject, requerant: c.requerant, requis: c.requis, zone: zoneOfPostcode(me.postcode ?? ""), day });
      this.ledger.push(entry);
    }
  }

  private go(tab: Tab): void {
    this.tab = tab;
    this.message = null;
    this.render();
    void this.reload();
  }

  view(): HTMLElement {
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
        this.form ??= requestForm((form) => void this.submit(form));
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
        const request = this.requestOf(c.room);
        return h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: "room", "data-room": c.room, "data-state": c.state, onclick: () => this.go({ name: "case", room: c.room }) },
            h("span", { class: "room-name" }, request ? String(request.reason) : this.client.roomTitle(c.room)),
            h("span", { class: "room-when" }, `${tt(role === "requerant" ? "to" : "from")} ${this.client.nameOf(other)} · `, h("strong", { class: "te-state" }, tt(c.state as TeleKey)), ` · ${tt("due")} ${when(c.deadline)}`),
          ),
        );
      }),
    );
  }

  private event(room: number, type: string): JsonObject | null {
    const found = this.client.messages(room).find((m) => m.event?.type === `teleexpertise.${type}`);
    return found?.event ?? null;
  }

  private requestOf(room: number): JsonObject | null {
    return this.event(room, "request");
  }

  private caseView(room: number): HTMLElement {
    const summary = [...this.sent, ...this.received].find((c) => c.room === room);
    if (!summary) return h("p", {}, "…");
    const mine = summary.requerant === this.client.nationalId ? "requerant" : "requis";
    const request = this.requestOf(room);
    const report = this.event(room, "report");
    const patient = request?.patient as JsonObject | undefined;
    const lines: Node[] = [
      h("p", {}, `${tt("state")} : `, h("strong", { id: "te-state" }, tt(summary.state as TeleKey)), ` · ${tt("due")} ${when(summary.deadline)}`),
    ];
    if (request && patient) {
      lines.push(
        h("p", { id: "te-patient" }, `${tt("patient")} : ${String(patient.birth_family_name)} ${(patient.birth_given_names as string[]).join(" ")}, ${String(patient.birth_date)} (${String(patient.status)})`),
        h("p", {}, `${tt("reason")} : ${String(request.reason)}`),
        h("p", { id: "te-question" }, `${tt("question")} : ${String(request.question)}`),
        h("p", {}, `${(request.attachments as JsonObject[]).length} ${tt("attachments")}`),
      );
    }
    if (report) lines.push(h("p", { id: "te-answer" }, `${tt("answer")} : ${String(report.answer)}`));
    const actions: Node[] = [];
    const act = (label: TeleKey, action: string, content: () => JsonObject) =>
      h("button", { type: "button", disabled: this.busy, onclick: () => void this.step(room, action, content) }, tt(label));
    if (mine === "requis" && summary.state === "requested") {
      const reason = h("input", { id: "te-decline-reason", maxlength: 2000 });
      actions.push(
        act("accept", "accept", () => acceptEvent("")),
        h("p", { class: "field" }, h("label", { for: "te-decline-reason" }, tt("declineReason")), reason),
        act("decline", "decline", () => declineEvent(reason.value)),
      );
    }
    if (mine === "requis" && summary.state === "accepted") actions.push(h("p", { id: "te-report-missing" }, tt("reportMissing")));
    if (mine === "requerant" && (summary.state === "requested" || summary.state === "accepted")) actions.push(act("cancel", "cancel", () => cancelEvent("")));
    if (summary.state === "answered") actions.push(act("close", "close", () => closeEvent("")));
    return h("div", { class: "te-case", "data-room": room }, ...lines, ...actions);
  }

  private async step(room: number, action: string, content: () => JsonObject): Promise<void> {
    this.busy = true;
    this.render();
    try {
      await sendStep(this.client, this.api, room, action, content());
      this.message = null;
    } catch (error) {
      this.message = describeError(error);
    } finally {
      this.busy = false;
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
    try {
      const patient = patientIdentity(form.patient);
      const requis = await professional(this.api, form.requis);
      const requerant = await professional(this.api, this.client.nationalId);
      // Checked before anything is created: the same checks run again with the files.
      requestEvent({ ...form, requis, requerant, patient, attachments: [] });
      const photos = await Promise.all(form.photos.map((file) => processPhoto(file)));
      const room = await createCaseRoom(this.client, form.requis, form.reason, patient);
      const messageId = crypto.randomUUID();
      const files = new AttachmentApi(this.client.data.token);
      const attachments: Descriptor[] = [];
      for (const [index, photo] of photos.entries()) attachments.push(await sendPhoto(files, photo, { room, messageId }, form.photos[index]!.name.slice(0, 200) || undefined));
      const content = requestEvent({ ...form, requis, requerant, patient, attachments });
      await sendRequest(this.client, this.api, room, messageId, content);
      this.message = null;
      this.form = null;
      this.tab = { name: "case", room };
    } catch (error) {
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
}

export { OIDS, STATUSES };
