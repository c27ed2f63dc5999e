// Compiled (not run) by `make sdk-check`: the declarations in src/cairn.d.ts describe the API as
// the README shows it.
import type { LayoutDescriptor, Preferences, Renderer, Widget } from "../src/cairn";

declare const bundledHome: LayoutDescriptor;

Cairn.init({
  host: "https://cairn.example.com",
  key: "pk_live",
  tenantId: "acme",
  userId: "u1",
  userHash: "9f2c",
  defaults: { home: bundledHome },
  timeout: 2000,
  onError: (err) => console.warn(err.status, err.code, err.field, err.message),
});

const element = document.getElementById("cairn-home") as HTMLElement;
const shown: Promise<LayoutDescriptor | null> = Cairn.render("home", element, { live: true, headingLevel: 3 });
element.addEventListener("cairn:layout", (e) => console.log(e.detail.decision_id, e.detail.slots.length));
Cairn.renderDescriptor("#preview", bundledHome, { preview: true });

const nps: Renderer = (widget, ctx) =>
  ctx.h("div", null, ctx.heading(String(widget.props.title)), ctx.link("/survey", "Answer", "survey"));
Cairn.registerRenderer("nps_survey", nps);
Cairn.registerRenderer("help_tip", null);

void Cairn.track("report_created", { source: "editor" });
void Cairn.identify({ company_size: 12 });
void Cairn.identify("u2", { theme: "dark" }, { userHash: "77ab" });
void Cairn.complete("next_activation_step");
void Cairn.setPersonalization?.("basic");
const center: Promise<Preferences | null> | undefined = Cairn.preferences?.("#preferences", { headingLevel: 3 });
void center?.then((shown) => shown && shown.notifications.quiet_hours?.time_zone);
void Cairn.flush();
Cairn.unmount(element);

function firstStep(d: LayoutDescriptor): string | null {
  for (const slot of d.slots) {
    for (const w of slot.widgets as Widget[]) {
      if (w.type === "next_step_card") return w.props.cta.href;
      if (w.type === "integration_prompt") return w.props.integrations[0]?.connect_href ?? null;
    }
  }
  return null;
}
void shown.then((d) => d && firstStep(d));
