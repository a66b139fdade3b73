// The practitioner's acts, decrypted on this device (teleexpertise/ledger.ts), and their
// CSV export: a file made here and downloaded, never sent anywhere.
import { h } from "../dom";
import { exportCsv, type LedgerEntry } from "../../teleexpertise/ledger";
import { tt } from "./strings";

function euros(cents: number): string {
  return `${Math.floor(cents / 100)},${String(cents % 100).padStart(2, "0")} €`;
}

function download(entries: LedgerEntry[]): void {
  const url = URL.createObjectURL(new Blob([exportCsv(entries)], { type: "text/csv;charset=utf-8" }));
  const link = h("a", { href: url, download: "actes-teleexpertise.csv" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function ledgerView(entries: LedgerEntry[]): HTMLElement {
  if (entries.length === 0) return h("p", { id: "te-ledger" }, tt("noActs"));
  return h(
    "div",
    { id: "te-ledger" },
    h(
      "table",
      { class: "te-ledger" },
      h("thead", {}, h("tr", {}, h("th", {}, tt("day")), h("th", {}, tt("act")), h("th", {}, tt("patient")), h("th", {}, tt("amount")), h("th", {}, tt("billable")))),
      h(
        "tbody",
        {},
        entries.map((e) =>
          h(
            "tr",
            { "data-room": e.room, "data-code": e.code },
            h("td", {}, e.day),
            h("td", {}, e.code),
            h("td", {}, `${String(e.patient.birth_family_name)} ${String((e.patient.birth_given_names as string[])[0])} (${String(e.patient.birth_date)})`),
            h("td", {}, euros(e.amount_cents)),
            h("td", {}, tt(e.billable ? "yes" : "no")),
          ),
        ),
      ),
    ),
    h("button", { type: "button", id: "te-export", onclick: () => download(entries) }, tt("exportCsv")),
  );
}
