// Type declarations for the Cairn web SDK (window.Cairn) and the layout descriptor, schema version 1.
// The descriptor types mirror widgets/descriptor.py and widgets/*.py; props may grow in later
// releases, so renderers should tolerate fields they do not know.

export type WidgetType =
  | "shortcut_grid"
  | "next_step_card"
  | "checklist"
  | "integration_prompt"
  | "upgrade_gate"
  | "help_tip"
  | "template_gallery";

// ---- descriptor ----

export interface Driver {
  signal: string;
  value: string | number | boolean | null | string[];
}

export interface Why {
  summary: string;
  source: "rule" | "recommender" | "experiment" | "default";
  confidence: number;
  drivers: Driver[];
}

export interface Link {
  label: string;
  href: string;
}

export interface ShortcutGridProps {
  title: string;
  items: { label: string; href: string; icon: string }[];
}

export interface NextStepCardProps {
  title: string;
  body: string;
  cta: Link;
  progress: { done: number; total: number } | null;
  dismissible: boolean;
}

export interface ChecklistProps {
  title: string;
  items: { id: string; label: string; done: boolean; href: string }[];
}

export interface IntegrationPromptProps {
  title: string;
  integrations: {
    id: string;
    name: string;
    connect_href: string;
    /** share is a fraction (0.62 = 62%). */
    peer_adoption: { share: number; cohort: string } | null;
  }[];
}

export interface UpgradeGateProps {
  trigger: { kind: "limit" | "feature"; name: string };
  title: string;
  roi: string;
  cta: Link;
  back: Link;
}

export interface HelpTipProps {
  title: string;
  body: string;
  article: { id: string; title: string; href: string; kind: "article" | "lesson" | "video" };
  trigger: string;
}

export interface TemplateGalleryProps {
  title: string;
  templates: { id: string; name: string; href: string; reason: string }[];
}

export interface WidgetPropsByType {
  shortcut_grid: ShortcutGridProps;
  next_step_card: NextStepCardProps;
  checklist: ChecklistProps;
  integration_prompt: IntegrationPromptProps;
  upgrade_gate: UpgradeGateProps;
  help_tip: HelpTipProps;
  template_gallery: TemplateGalleryProps;
}

interface WidgetCommon {
  id: string;
  why: Why;
  /** What to show when this client cannot render the widget: "drop", or a simpler widget. */
  fallback: "drop" | Widget;
}

/** One of the seven widget types of schema version 1, discriminated by `type`. */
export type Widget = {
  [T in WidgetType]: WidgetCommon & { type: T; props: WidgetPropsByType[T] };
}[WidgetType];

/** A widget of a type this SDK version does not know (rendered by a registered renderer, or its fallback). */
export interface UnknownWidget extends WidgetCommon {
  type: string;
  props: Record<string, unknown>;
}

export interface SlotDescriptor {
  id: string;
  widgets: Widget[];
}

export interface ViewOption {
  id: string;
  label: string;
}

export interface ViewDescriptor extends ViewOption {
  options: ViewOption[];
}

export interface PresetsDescriptor {
  industry: string;
  terms: Record<string, string>;
  default_fields: string[];
  reports: string[];
}

export interface LayoutDescriptor {
  schema_version: number;
  screen: string;
  layout: string;
  decision_id: string;
  generated_at: string;
  personalized: boolean;
  degraded: boolean;
  view: ViewDescriptor;
  presets: PresetsDescriptor | null;
  slots: SlotDescriptor[];
  /** Flags marked `client: true` in layouts/flags.yaml, with this user's values. */
  flags?: Record<string, FlagValue>;
}

export type FlagValue =
  | boolean
  | number
  | string
  | null
  | FlagValue[]
  | { [key: string]: FlagValue };

// ---- SDK ----

/** What onError receives: an Error, with the HTTP status, Cairn error code and field when Cairn answered. */
export interface CairnError extends Error {
  status?: number;
  code?: string;
  field?: string;
}

export type Personalization = "full" | "basic" | "off";

/** Where the layout on screen came from (the element's data-cairn-source attribute). */
export type LayoutSource = "server" | "cache" | "default" | "host" | "preview";

export interface InitOptions {
  /** Cairn's base URL, e.g. "https://cairn.example.com" ("" for the same origin). */
  host: string;
  /** Publishable key (pk_…). Never put the secret key in a browser. */
  key: string;
  tenantId: string;
  userId: string;
  /** Hex HMAC-SHA256(identity secret, "<tenantId>:<userId>"), computed by the host app's server. */
  userHash: string;
  /** The host app's version, sent as X-Cairn-Client: web/<clientVersion>. Defaults to the SDK version. */
  clientVersion?: string;
  /** Called on network, HTTP and rendering problems. The SDK itself never throws into the page. */
  onError?: (error: CairnError) => void;
  /** Keep the last layout per user, screen and view in localStorage and show it at once next time (default true). */
  cache?: boolean;
  /**
   * Layouts the host app bundles, per screen, shown when there is no cached layout and Cairn has
   * not answered within `timeout` (or has failed). Without one, the element keeps its own content.
   */
  defaults?: Record<string, LayoutDescriptor>;
  /** Milliseconds to wait for Cairn before showing the bundled default (default 3000). */
  timeout?: number;
  /**
   * The user's personalization preference, when the host app already knows it. Otherwise the SDK
   * reads it from Cairn before it sends its first events. What each level lets the SDK send:
   * full, everything; basic, identify calls, widget_dismissed and widget_completed; off, nothing.
   */
  personalization?: Personalization;
  /** Inject the default stylesheet (default true; the core build has none). */
  css?: boolean;
}

/** A user's preferences, as `GET` / `PUT /v1/preferences` carry them. */
export interface Preferences {
  personalization: Personalization;
  /** Purposes opted out of (false) or into (true) beyond the level (layouts/signals.yaml). */
  purposes: Record<string, boolean>;
  notifications: {
    channels: ("in_app" | "email" | "push" | "slack")[];
    categories: string[];
    digest: "off" | "daily" | "weekly";
    /** "HH:MM" times in an IANA time zone; null: none. */
    quiet_hours: { start: string; end: string; time_zone: string } | null;
  };
}

export interface PreferencesOptions {
  /** Heading level of the preference center's title, 2 to 6 (default 2). */
  headingLevel?: number;
}

export interface RenderOptions {
  /** Ask for this view instead of the one the user last chose (or the default). */
  view?: string;
  /** Keep the layout up to date over the server-sent event stream (full build). */
  live?: boolean;
  /** Heading level of widget titles, 2 to 6 (default 2). */
  headingLevel?: number;
}

export interface RenderDescriptorOptions {
  headingLevel?: number;
  /** Render only: no widget_viewed events (for previews). */
  preview?: boolean;
}

/** Helpers handed to a renderer. */
export interface RenderContext {
  /** Element builder: h("p", {class: "x"}, "text", child). Strings become text nodes, never HTML. */
  h(tag: string, attrs?: Record<string, unknown> | null, ...children: unknown[]): HTMLElement;
  /** The widget's title heading; it also labels the widget for assistive technology. */
  heading(text: string): HTMLElement;
  /** A link for http(s) or relative hrefs; plain text for anything else. `item` is reported in widget_clicked. */
  link(href: string | null | undefined, label: string | Node | Array<string | Node>, item?: string, className?: string): HTMLElement;
  /** A <progress> bar with the text "<done> of <total> done". */
  progress(done: number, total: number): HTMLElement;
  screen: string;
  decisionId: string;
  descriptor: LayoutDescriptor;
}

/**
 * Renders one widget's content. The SDK wraps it in the widget frame ("Why this?", Dismiss) and
 * reports clicks on links (and on elements marked data-cairn-cta) inside it as widget_clicked.
 * Returning anything but a Node, or throwing, makes the SDK use the widget's fallback.
 */
export type Renderer = (widget: Widget | UnknownWidget, ctx: RenderContext) => Node;

export interface CairnSDK {
  readonly version: string;
  /** Configure the SDK; calling it again for another user swaps layouts and event queue. */
  init(options: InitOptions): void;
  /**
   * Render `screen` into `element` (an element or a CSS selector): the cached layout at once, then
   * Cairn's when it arrives (swapped in only when it differs); with neither within `timeout`, the
   * bundled default. Resolves with the descriptor on screen (or null) once Cairn has answered or
   * the timeout has passed; never rejects. The element fires a `cairn:layout` CustomEvent
   * (detail: the descriptor) after each render.
   */
  render(screen: string, element: Element | string, options?: RenderOptions): Promise<LayoutDescriptor | null>;
  /** Render a descriptor you already have (server-side bootstrap, previews). Works before init. */
  renderDescriptor(element: Element | string, descriptor: LayoutDescriptor, options?: RenderDescriptorOptions): void;
  /** Stop updating `element` (closes its live stream) and empty it. */
  unmount(element: Element): void;
  /** Add or replace the renderer of a widget type; pass null to remove one (built-ins included). */
  registerRenderer(type: string, renderer: Renderer | null): void;
  /** Queue a Segment track call for the current user. */
  track(event: string, properties?: Record<string, unknown>): Promise<void>;
  /**
   * Queue a Segment identify call with declared traits: identify(traits) for the current user, or
   * identify(userId, traits, {userHash}) to switch to another user of the same tenant.
   */
  identify(traits: Record<string, unknown>): Promise<void>;
  identify(userId: string, traits?: Record<string, unknown>, options?: { userHash: string }): Promise<void>;
  /** Report widget_completed for a widget on screen: the user did what it suggested. */
  complete(widgetId: string, properties?: Record<string, unknown>): Promise<void>;
  /**
   * Change the user's personalization preference in Cairn (full build): queued events it does not
   * allow are dropped at once, and the layouts on screen are fetched again.
   */
  setPersonalization?(level: Personalization): Promise<void>;
  /**
   * Render the user's preference center into `element` (an element or a CSS selector): the
   * personalization level, a checkbox per consent purpose, notification channels, categories,
   * digest cadence and quiet hours, and a save button. Present once cairn.preferences.js is loaded
   * after cairn.js or cairn.core.js; uses init's configuration. Saving stores the whole document,
   * drops queued events the new level does not allow and fetches the layouts on screen again.
   * Resolves with the preferences shown, or null when they could not be loaded (the element then
   * says so); never rejects.
   */
  preferences?(element: Element | string, options?: PreferencesOptions): Promise<Preferences | null>;
  /** Send queued events now. */
  flush(): Promise<void>;
}

declare global {
  interface Window {
    Cairn: CairnSDK;
  }
  const Cairn: CairnSDK;
  interface HTMLElementEventMap {
    "cairn:layout": CustomEvent<LayoutDescriptor>;
  }
}
