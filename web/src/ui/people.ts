// Starting a conversation from a directory search, and creating a care team.
import type { Api } from "../api/http";
import { t } from "../i18n";
import { header } from "./chrome";
import { h } from "./dom";

export interface Practitioner {
  national_id: string;
  first_name: string;
  last_name: string;
  profession_label: string;
  town: string;
}

export interface SearchActions {
  back(): void;
  search(query: string): void;
  start(nationalId: string): void;
}

export async function searchDirectory(api: Api, query: string): Promise<Practitioner[]> {
  const answer = await api.get<{ results: Practitioner[] }>(`directory/practitioners?q=${encodeURIComponent(query)}&limit=20`);
  return answer.results;
}

export function searchView(actions: SearchActions, query: string, results: Practitioner[] | null, message: string | null): HTMLElement {
  const input = h("input", { id: "search", name: "q", type: "search", value: query, required: true, minlength: 2, maxlength: 100 });
  return h(
    "section",
    { class: "screen search", "aria-labelledby": "screen-title" },
    header(t("newConversation"), actions.back),
    h(
      "form",
      {
        role: "search",
        onsubmit: (event: Event) => {
          event.preventDefault();
          actions.search(input.value.trim());
        },
      },
      h("p", { class: "field" }, h("label", { for: "search" }, t("searchLabel")), input),
      h("button", { type: "submit" }, t("search")),
    ),
    message ? h("p", { role: "status" }, message) : null,
    results === null
      ? null
      : results.length === 0
        ? h("p", {}, t("noResults"))
        : h(
            "ul",
            { class: "room-list", id: "results" },
            results.map((p) =>
              h(
                "li",
                {},
                h(
                  "button",
                  { type: "button", class: "room", "data-national-id": p.national_id, onclick: () => actions.start(p.national_id) },
                  h("span", { class: "room-name" }, t("startWith", { name: `${p.first_name} ${p.last_name}` })),
                  h("span", { class: "room-when" }, [p.profession_label, p.town].filter(Boolean).join(" · ")),
                ),
              ),
            ),
          ),
  );
}

export interface CareTeamActions {
  back(): void;
  create(title: string, members: string[]): void;
}

export function careTeamView(actions: CareTeamActions, error: string | null): HTMLElement {
  const title = h("input", { id: "team-title", required: true, maxlength: 120 });
  const members = h("input", { id: "team-members", required: true, maxlength: 500, inputmode: "numeric" });
  return h(
    "section",
    { class: "screen care-team", "aria-labelledby": "screen-title" },
    header(t("newCareTeam"), actions.back),
    error ? h("p", { role: "alert", class: "error" }, error) : null,
    h(
      "form",
      {
        class: "card",
        onsubmit: (event: Event) => {
          event.preventDefault();
          const ids = members.value.split(/[\s,;]+/).filter(Boolean);
          actions.create(title.value.trim(), ids);
        },
      },
      h("p", { class: "field" }, h("label", { for: "team-title" }, t("careTeamName")), title),
      h("p", { class: "field" }, h("label", { for: "team-members" }, t("careTeamMembers")), members, h("small", {}, t("membersHint"))),
      h("button", { type: "submit", id: "create-team" }, t("create")),
    ),
  );
}
