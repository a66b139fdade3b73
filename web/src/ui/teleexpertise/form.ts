// The requérant's request form: the requis, the patient's identity (INS and traits), the
// consent as attested, the question, and photos. The values are checked on submit
// (teleexpertise/patient.ts, teleexpertise/cases.ts) before anything is created.
import { h } from "../dom";
import type { FormValues } from "./screen";
import { OIDS, STATUSES } from "../../teleexpertise/patient";
import { tt, type TeleKey } from "./strings";

function field(id: string, label: TeleKey, input: HTMLElement): HTMLElement {
  return h("p", { class: "field" }, h("label", { for: id }, tt(label)), input);
}

function localInput(moment: Date): string {
  const local = new Date(moment.getTime() - moment.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}

/** ``archiverDefault``: the organisation named on this device's last request. */
export function requestForm(submit: (values: FormValues) => void, archiverDefault = ""): HTMLElement {
  const input = (id: string, attributes: Record<string, string | number | boolean> = {}) => h("input", { id, name: id, ...attributes });
  const select = (id: string, options: [string, string][]) => h("select", { id, name: id }, options.map(([value, label]) => h("option", { value }, label)));
  const requis = input("te-requis", { required: true, inputmode: "numeric", pattern: "[0-9]{11,12}", maxlength: 12 });
  const status = select("te-status", STATUSES.map((s) => [s, s]));
  const family = input("te-family", { required: true, maxlength: 100 });
  const given = input("te-given", { required: true, maxlength: 2000 });
  const birthDate = input("te-birth-date", { type: "date", required: true });
  const sex = select("te-sex", [["F", "F"], ["M", "M"], ["U", "U"]]);
  const birthplace = input("te-birthplace", { maxlength: 5 });
  const matricule = input("te-matricule", { maxlength: 15 });
  const oid = select("te-oid", [["", "—"], ...OIDS.map((o): [string, string] => [o, o])]);
  const consentGiven = input("te-consent", { type: "checkbox" });
  const consentDate = input("te-consent-date", { type: "date", required: true, value: new Date().toISOString().slice(0, 10) });
  const method = select("te-consent-method", [["oral", tt("oral")], ["written", tt("written")], ["electronic", tt("electronic")]]);
  const reason = input("te-reason", { required: true, maxlength: 500 });
  const question = h("textarea", { id: "te-question-text", required: true, maxlength: 5000, rows: 4 });
  const clinical = h("textarea", { id: "te-clinical", maxlength: 12000, rows: 3 });
  const urgent = input("te-urgent", { type: "checkbox" });
  const deadline = input("te-deadline", { type: "datetime-local", required: true, value: localInput(new Date(Date.now() + 48 * 3600_000)) });
  const photos = input("te-photos", { type: "file", accept: "image/*", multiple: true });
  const archiver = input("te-archiver", { maxlength: 40, value: archiverDefault, placeholder: "org:" });
  const optional = (value: string) => (value.trim() ? value.trim() : undefined);
  return h(
    "form",
    {
      id: "te-form",
      class: "te-form",
      onsubmit: (event: Event) => {
        event.preventDefault();
        const s = (e: HTMLElement) => (e as HTMLInputElement).value;
        submit({
          requis: s(requis).trim(),
          patient: {
            status: s(status) as FormValues["patient"]["status"],
            birthFamilyName: s(family),
            birthGivenNames: s(given).split(",").map((n) => n.trim()).filter(Boolean),
            birthDate: s(birthDate),
            sex: s(sex) as "F" | "M" | "U",
            ...(optional(s(birthplace)) ? { birthplace: optional(s(birthplace))! } : {}),
            ...(optional(s(matricule)) ? { matricule: optional(s(matricule))! } : {}),
            ...(s(oid) ? { oid: s(oid) } : {}),
          },
          consentGiven: (consentGiven as HTMLInputElement).checked,
          consent: { obtainedOn: s(consentDate), method: s(method) as "oral", givenBy: "patient" },
          reason: s(reason).trim(),
          question: s(question).trim(),
          clinicalData: s(clinical).trim(),
          urgency: (urgent as HTMLInputElement).checked ? "urgent" : "routine",
          deadline: new Date(s(deadline)),
          photos: [...((photos as HTMLInputElement).files ?? [])].slice(0, 10),
          archiver: s(archiver).trim(),
        });
      },
    },
    field("te-requis", "requis", requis),
    h(
      "fieldset",
      {},
      h("legend", {}, tt("patient")),
      field("te-status", "status", status),
      field("te-family", "familyName", family),
      field("te-given", "givenNames", given),
      field("te-birth-date", "birthDate", birthDate),
      field("te-sex", "sex", sex),
      field("te-birthplace", "birthplace", birthplace),
      field("te-matricule", "matricule", matricule),
      field("te-oid", "oid", oid),
    ),
    h("p", { class: "field te-check" }, consentGiven, h("label", { for: "te-consent" }, tt("consentGiven"))),
    field("te-consent-date", "consentDate", consentDate),
    field("te-consent-method", "consentMethod", method),
    field("te-reason", "reason", reason),
    field("te-question-text", "question", question),
    field("te-clinical", "clinical", clinical),
    h("p", { class: "field te-check" }, urgent, h("label", { for: "te-urgent" }, tt("urgent"))),
    field("te-deadline", "deadline", deadline),
    field("te-photos", "photos", photos),
    field("te-archiver", "archiver", archiver),
    h("button", { type: "submit" }, tt("send")),
  );
}
