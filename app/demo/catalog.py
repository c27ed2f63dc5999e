"""The demo catalog: templates and integrations per industry, help articles and lessons per feature.

It uses the ids the shipped configuration names (integrations and templates in
layouts/presets.yaml, articles in layouts/help.yaml, features in layouts/signals.yaml, the help
articles the demo population reads) and adds many more, each with text a person would write, so
that the recommender has something real to embed.
"""

from __future__ import annotations

from typing import Final

from recommender.catalog import Catalog, CatalogItem

__all__ = ["FEATURES", "demo_catalog", "demo_items"]

FEATURES: Final[tuple[str, ...]] = (
    "reports",
    "templates",
    "automations",
    "integrations",
    "api",
    "custom_fields",
    "sso",
    "audit_log",
    "advanced_permissions",
    "editor",
)

_ALL_ROLES: Final = ()
_BUILDERS: Final = ("admin", "maker")
_ADMINS: Final = ("admin",)

# --------------------------------------------------------------------------------------------------
# Integrations: (id, name, description, industries, extra tags).

# fmt: off
_INTEGRATIONS: Final[tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...]] = (
    ("slack", "Slack", "Post alerts, report digests and approvals into Slack channels, and let "
     "people act on a record without leaving the conversation.", (), ("chat", "notifications")),
    ("google_workspace", "Google Workspace", "Sign in with Google, sync calendars and contacts, "
     "and attach Drive files and Sheets to any record.", ("education",), ("calendar", "files")),
    ("microsoft_teams", "Microsoft Teams", "Send notifications and approval requests to Teams "
     "channels and open records from a Teams tab.", ("healthcare", "manufacturing"),
     ("chat", "notifications")),
    ("salesforce", "Salesforce", "Two-way sync of accounts, contacts and opportunities with "
     "Salesforce CRM, so sales and operations see the same pipeline.", ("fintech",),
     ("crm", "sales")),
    ("hubspot", "HubSpot", "Sync contacts, companies and deals with HubSpot and trigger "
     "workflows when a lifecycle stage changes.", ("software",), ("crm", "marketing")),
    ("stripe", "Stripe", "Bring payments, subscriptions, refunds and payouts from Stripe in, and "
     "reconcile them against orders and invoices.", ("fintech", "ecommerce"),
     ("payments", "billing")),
    ("quickbooks", "QuickBooks", "Push invoices and expenses to QuickBooks Online and keep "
     "customers and the chart of accounts in sync.", (), ("accounting", "finance")),
    ("shopify", "Shopify", "Import orders, products, inventory levels and customers from your "
     "Shopify store as they happen.", ("ecommerce",), ("store", "orders")),
    ("zendesk", "Zendesk", "Link support tickets to customers and orders, and open a ticket from "
     "any record when something goes wrong.", ("ecommerce",), ("support", "tickets")),
    ("epic", "Epic EHR", "Read patient demographics, appointments and referrals from Epic over "
     "FHIR, with access scoped to your practice.", ("healthcare",), ("ehr", "patients")),
    ("athenahealth", "athenahealth", "Sync appointments, patient intake forms and claims status "
     "from athenaOne.", ("healthcare",), ("ehr", "scheduling")),
    ("plaid", "Plaid", "Verify bank accounts and pull balances and transactions for lending and "
     "onboarding checks through Plaid.", ("fintech",), ("banking", "kyc")),
    ("canvas", "Canvas LMS", "Sync courses, enrolments, assignments and grades from Canvas.",
     ("education",), ("lms", "courses")),
    ("google_classroom", "Google Classroom", "Import classes, rosters and coursework from Google "
     "Classroom and send updates to guardians.", ("education",), ("lms", "classes")),
    ("jira", "Jira", "Link records to Jira issues, create issues from a bug report and see their "
     "status update in place.", ("software",), ("issues", "engineering")),
    ("github", "GitHub", "Connect repositories to track pull requests, releases and deployments "
     "next to the work they deliver.", ("software",), ("code", "engineering")),
    ("netsuite", "NetSuite", "Sync purchase orders, items, vendors and inventory with Oracle "
     "NetSuite ERP.", ("manufacturing",), ("erp", "inventory")),
    ("sap", "SAP", "Exchange production orders, materials and quality notifications with SAP S/4 "
     "HANA.", ("manufacturing",), ("erp", "production")),
    ("microsoft_365", "Microsoft 365", "Sign in with Microsoft, attach OneDrive and SharePoint "
     "files and sync Outlook calendars.", (), ("calendar", "files")),
    ("xero", "Xero", "Send invoices and bills to Xero and match payments automatically.", (),
     ("accounting", "finance")),
    ("mailchimp", "Mailchimp", "Sync audiences and tags to Mailchimp and see campaign engagement "
     "on each contact.", ("ecommerce",), ("email", "marketing")),
    ("klaviyo", "Klaviyo", "Send order and browsing events to Klaviyo flows for abandoned-cart "
     "and win-back emails.", ("ecommerce",), ("email", "marketing")),
    ("intercom", "Intercom", "Show customer data inside Intercom conversations and start chats "
     "from a record.", ("software",), ("support", "chat")),
    ("twilio", "Twilio", "Send SMS reminders and two-factor codes through your Twilio account.",
     ("healthcare", "education"), ("sms", "notifications")),
    ("docusign", "DocuSign", "Send agreements for e-signature from a record and file the signed "
     "copy automatically.", ("fintech",), ("signatures", "documents")),
    ("zoom", "Zoom", "Schedule Zoom meetings from a record and log the recording link when the "
     "meeting ends.", ("education", "healthcare"), ("meetings", "video")),
    ("okta", "Okta", "Provision and deprovision users from Okta with SCIM and sign in with Okta "
     "single sign-on.", (), ("identity", "sso")),
    ("azure_ad", "Microsoft Entra ID", "Single sign-on and user provisioning from Microsoft Entra "
     "ID (Azure AD) groups.", (), ("identity", "sso")),
    ("gitlab", "GitLab", "Track merge requests, pipelines and releases from GitLab projects.",
     ("software",), ("code", "engineering")),
    ("pagerduty", "PagerDuty", "Open and resolve PagerDuty incidents from alerts, and see who is "
     "on call.", ("software",), ("incidents", "alerts")),
    ("datadog", "Datadog", "Pull monitors and incident timelines from Datadog into release and "
     "incident records.", ("software",), ("monitoring", "engineering")),
    ("snowflake", "Snowflake", "Export your records to Snowflake every hour for analysis next to "
     "the rest of your data.", (), ("warehouse", "analytics")),
    ("bigquery", "Google BigQuery", "Stream records and events into BigQuery tables for your "
     "analysts.", (), ("warehouse", "analytics")),
    ("woocommerce", "WooCommerce", "Import orders, products and customers from a WooCommerce "
     "store.", ("ecommerce",), ("store", "orders")),
    ("square", "Square", "Bring in-person sales, catalog items and customers from Square point of "
     "sale.", ("ecommerce",), ("payments", "retail")),
    ("shipstation", "ShipStation", "Create shipping labels and sync tracking numbers back to "
     "orders.", ("ecommerce",), ("shipping", "fulfilment")),
    ("gusto", "Gusto", "Sync employees, departments and time off from Gusto payroll.", (),
     ("hr", "payroll")),
    ("moodle", "Moodle", "Sync courses, cohorts and completion data from Moodle.",
     ("education",), ("lms", "courses")),
    ("cerner", "Oracle Health (Cerner)", "Read schedules and patient records from Oracle Health "
     "(Cerner) over FHIR.", ("healthcare",), ("ehr", "patients")),
    ("brex", "Brex", "Import card transactions and receipts from Brex for expense review.",
     ("fintech",), ("expenses", "finance")),
    ("fishbowl", "Fishbowl Inventory", "Sync parts, stock levels and work orders with Fishbowl.",
     ("manufacturing",), ("inventory", "production")),
    ("sentry", "Sentry", "Link errors from Sentry to bug reports and releases.", ("software",),
     ("errors", "engineering")),
)
# fmt: on

# --------------------------------------------------------------------------------------------------
# Templates: (id, name, description, industries, tags).

# fmt: off
_TEMPLATES: Final[tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...]] = (
    # Healthcare.
    ("patient_intake", "Patient intake workflow", "Collect demographics, insurance and consent "
     "before the first visit, and route incomplete intakes to the front desk.", ("healthcare",),
     ("forms", "patients")),
    ("appointment_reminders", "Appointment reminders", "Remind patients of upcoming appointments "
     "by SMS and email and track confirmations and no-shows.", ("healthcare",),
     ("automations", "scheduling")),
    ("referral_tracking", "Referral tracking", "Follow each referral from request to scheduled "
     "visit, with the referring physician and insurance authorisation.", ("healthcare",),
     ("pipeline", "patients")),
    ("care_plan_tracker", "Care plan tracker", "Goals, interventions and follow-up dates for each "
     "patient's care plan, shared across the care team.", ("healthcare",), ("patients", "tasks")),
    ("clinic_staff_rota", "Clinic staff rota", "Plan shifts for physicians, nurses and front desk "
     "staff and spot gaps in coverage.", ("healthcare",), ("scheduling", "staff")),
    ("insurance_claims", "Insurance claims follow-up", "Track submitted claims, denials and "
     "resubmissions by payer.", ("healthcare",), ("reports", "billing")),
    ("patient_feedback", "Patient satisfaction survey", "Send a short survey after each visit and "
     "report satisfaction by clinic and physician.", ("healthcare",), ("reports", "forms")),
    ("lab_results_queue", "Lab results queue", "Route incoming lab results to the ordering "
     "physician and make sure every result is reviewed and communicated.", ("healthcare",),
     ("automations", "patients")),
    # Fintech.
    ("kyc_review", "KYC review queue", "Review identity documents and sanctions checks for new "
     "clients, with risk ratings and an audit trail for every decision.", ("fintech",),
     ("compliance", "kyc")),
    ("loan_pipeline", "Loan application pipeline", "Move loan applications from submission "
     "through underwriting to funding, with documents and credit checks on each stage.",
     ("fintech",), ("pipeline", "lending")),
    ("fraud_alerts", "Fraud alert triage", "Triage suspicious transactions by severity, assign "
     "investigators and record outcomes.", ("fintech",), ("automations", "risk")),
    ("client_onboarding", "Client onboarding checklist", "Every step to onboard a new client: "
     "agreements signed, accounts verified, first transaction completed.", ("fintech",),
     ("onboarding", "kyc")),
    ("chargeback_disputes", "Chargeback disputes", "Collect evidence and meet the deadlines for "
     "each card chargeback.", ("fintech", "ecommerce"), ("payments", "disputes")),
    ("compliance_calendar", "Compliance calendar", "Regulatory filings, audits and policy reviews "
     "with owners and due dates.", ("fintech",), ("compliance", "automations")),
    ("portfolio_review", "Quarterly portfolio review", "Prepare quarterly reviews with holdings, "
     "performance and suitability notes for each client.", ("fintech",), ("reports", "clients")),
    ("expense_approvals", "Expense approvals", "Submit, approve and reimburse expenses with "
     "receipts and spending limits.", (), ("approvals", "automations")),
    # E-commerce.
    ("order_fulfilment", "Order fulfilment board", "Pick, pack and ship every order on one board, "
     "with carriers, tracking numbers and late orders flagged.", ("ecommerce",),
     ("orders", "fulfilment")),
    ("returns_desk", "Returns desk", "Approve return requests, issue refunds and restock items, "
     "with the reason for each return recorded.", ("ecommerce",), ("orders", "support")),
    ("launch_calendar", "Product launch calendar", "Plan product drops and promotions with "
     "content, inventory and campaign dates in one calendar.", ("ecommerce",),
     ("marketing", "planning")),
    ("inventory_restock", "Inventory restock planner", "See stock levels against reorder points "
     "and raise purchase orders before items sell out.", ("ecommerce", "manufacturing"),
     ("inventory", "automations")),
    ("customer_reviews", "Customer review responses", "Collect product reviews and make sure every "
     "negative review gets a reply within a day.", ("ecommerce",), ("support", "marketing")),
    ("supplier_orders", "Supplier purchase orders", "Track purchase orders to suppliers from quote "
     "to delivery.", ("ecommerce", "manufacturing"), ("inventory", "suppliers")),
    ("promo_performance", "Promotion performance report", "Revenue, margin and conversion of each "
     "discount code and campaign.", ("ecommerce",), ("reports", "marketing")),
    ("wholesale_accounts", "Wholesale accounts", "Manage wholesale buyers, price lists and repeat "
     "orders.", ("ecommerce",), ("sales", "orders")),
    # Education.
    ("enrolment_tracker", "Enrolment tracker", "Follow applications and enrolments by programme "
     "and term, from enquiry to first day.", ("education",), ("pipeline", "students")),
    ("lesson_planner", "Lesson planner", "Plan lessons week by week with objectives, materials and "
     "links to coursework.", ("education",), ("planning", "courses")),
    ("parent_updates", "Parent update schedule", "Schedule regular updates to parents and "
     "guardians and log every conversation.", ("education",), ("automations", "communication")),
    ("attendance_register", "Attendance register", "Take attendance per class and flag students "
     "whose attendance drops.", ("education",), ("students", "reports")),
    ("course_catalogue", "Course catalogue", "Publish courses with prerequisites, capacity and "
     "instructors.", ("education",), ("courses", "planning")),
    ("exam_schedule", "Exam schedule", "Plan exam sessions, rooms and invigilators, and publish "
     "timetables to students.", ("education",), ("scheduling", "students")),
    ("student_support_cases", "Student support cases", "Log wellbeing and academic support cases "
     "with follow-ups and confidential notes.", ("education",), ("students", "support")),
    ("grading_tracker", "Grading tracker", "Track assignments awaiting marking and release grades "
     "on time.", ("education",), ("courses", "reports")),
    # Software.
    ("sprint_board", "Sprint board", "Plan two-week sprints with stories, estimates and a burndown "
     "chart.", ("software",), ("engineering", "planning")),
    ("bug_triage", "Bug triage", "Triage incoming bug reports by severity and affected customers, "
     "and assign them to the right team.", ("software",), ("engineering", "support")),
    ("release_checklist", "Release checklist", "Every step of a release: code freeze, QA sign-off, "
     "changelog, deployment and announcement.", ("software",), ("engineering", "releases")),
    ("incident_postmortem", "Incident postmortem", "Document an incident's timeline, impact, root "
     "cause and follow-up actions.", ("software",), ("engineering", "incidents")),
    ("product_roadmap", "Product roadmap", "Plan themes and initiatives by quarter and share the "
     "roadmap with the company.", ("software",), ("planning", "product")),
    ("feature_requests", "Feature request tracker", "Collect feature requests from customers, "
     "merge duplicates and see demand by account value.", ("software",), ("product", "customers")),
    ("customer_health", "Customer health dashboard", "Usage, support tickets and renewal dates per "
     "account, with at-risk accounts highlighted.", ("software",), ("reports", "customers")),
    ("oncall_rota", "On-call rota", "Weekly on-call schedule with handovers and escalation "
     "contacts.", ("software",), ("engineering", "scheduling")),
    # Manufacturing.
    ("qc_inspection", "Quality inspection log", "Record inspections per batch with measurements, "
     "defects found and pass or fail decisions.", ("manufacturing",), ("quality", "production")),
    ("maintenance_schedule", "Preventive maintenance schedule", "Plan recurring maintenance for "
     "every machine and log downtime and parts used.", ("manufacturing",),
     ("automations", "equipment")),
    ("supplier_scorecard", "Supplier scorecard", "Rate suppliers on delivery time, quality and "
     "price every month.", ("manufacturing",), ("reports", "suppliers")),
    ("production_schedule", "Production schedule", "Schedule work orders across lines and shifts "
     "and see capacity at a glance.", ("manufacturing",), ("production", "planning")),
    ("safety_incidents", "Safety incident report", "Report workplace incidents and near misses and "
     "follow corrective actions to closure.", ("manufacturing",), ("safety", "compliance")),
    ("nonconformance_capa", "Nonconformance and CAPA", "Handle nonconformance reports with root "
     "cause analysis and corrective and preventive actions.", ("manufacturing",),
     ("quality", "compliance")),
    ("bill_of_materials", "Bill of materials", "Keep bills of materials with part numbers, "
     "quantities and revisions.", ("manufacturing",), ("production", "inventory")),
    ("shift_handover", "Shift handover notes", "Hand over open issues, output and machine status "
     "between shifts.", ("manufacturing",), ("production", "communication")),
    # Any industry.
    ("project_tracker", "Project tracker", "Plan a project's tasks, owners and due dates and see "
     "what is late.", (), ("planning", "tasks")),
    ("weekly_report", "Weekly team report", "A report of what changed this week, sent to the team "
     "every Monday.", (), ("reports", "automations")),
    ("onboarding_plan", "Onboarding plan", "A 30-60-90 day plan for a new hire, with tasks for the "
     "manager and the buddy.", (), ("onboarding", "hr")),
    ("okr_tracker", "OKR tracker", "Set quarterly objectives and key results and update progress "
     "weekly.", (), ("planning", "goals")),
    ("meeting_notes", "Meeting notes and actions", "Agendas, notes and action items with owners, "
     "for recurring meetings.", (), ("communication", "tasks")),
    ("vendor_contracts", "Vendor contract renewals", "Track vendor contracts and get reminded "
     "before each renewal date.", (), ("automations", "finance")),
    ("hiring_pipeline", "Hiring pipeline", "Move candidates from application to offer with "
     "interview feedback on each stage.", (), ("pipeline", "hr")),
    ("content_calendar", "Content calendar", "Plan blog posts, newsletters and social posts with "
     "owners and publish dates.", (), ("marketing", "planning")),
)
# fmt: on

# --------------------------------------------------------------------------------------------------
# Help: (id, kind, title, description, feature tags, href).

# fmt: off
_HELP: Final[tuple[tuple[str, str, str, str, tuple[str, ...], str], ...]] = (
    # layouts/help.yaml.
    ("kb_reports_filters", "article", "Build a report with filters that work", "Why a report comes "
     "back empty, and how to fix its filters: date ranges, empty fields and conflicting "
     "conditions.", ("reports",), "/help/reports/filters"),
    ("lesson_reports_101", "lesson", "Reports in 3 minutes", "A short lesson on your first report: "
     "pick a source, group, filter and share it.", ("reports",), "/learn/reports-101"),
    ("kb_automation_triggers", "article", "Automation triggers that don't fire", "Check the "
     "trigger, the conditions and the run history when an automation does not start.",
     ("automations",), "/help/automations/triggers"),
    ("lesson_automations", "lesson", "Your first automation, step by step", "Automate one "
     "repetitive task: choose a trigger, add an action and test the run.", ("automations",),
     "/learn/automations"),
    ("kb_templates_customize", "article", "Adapt a template to your team", "Rename fields and "
     "stages without breaking a template.", ("templates",), "/help/templates/customize"),
    ("kb_integration_auth", "article", "Fix a failed integration connection", "Re-authorize, check "
     "scopes, and retry a sync when an integration stops working.", ("integrations",),
     "/help/integrations/auth"),
    ("kb_api_keys", "article", "Authenticate API requests", "Create a key, send it in the "
     "Authorization header, and read the error codes.", ("api",), "/help/api/keys"),
    ("kb_custom_fields", "article", "Custom field types and validation", "Pick the right field "
     "type and set validation rules.", ("custom_fields",), "/help/fields/custom"),
    ("kb_sso_setup", "article", "Set up single sign-on", "Connect your identity provider with SAML "
     "or OIDC.", ("sso",), "/help/security/sso"),
    ("kb_audit_log", "article", "Read the audit log", "Who did what, and when: filter the audit "
     "log by person, record and action.", ("audit_log",), "/help/security/audit-log"),
    ("kb_permissions", "article", "Roles and permissions", "Give each role exactly the access it "
     "needs.", ("advanced_permissions",), "/help/security/permissions"),
    ("kb_editor_basics", "lesson", "Editor shortcuts and autosave", "Undo, autosave and keyboard "
     "shortcuts in the editor, in a two-minute video.", ("editor",), "/help/editor/basics"),
    # The help centre the demo population reads.
    ("getting-started", "article", "Getting started in five minutes", "Set up your workspace, "
     "invite a teammate, connect a tool and create your first report.", ("onboarding",),
     "/help/getting-started"),
    ("invite-your-team", "article", "Invite your team", "Send invitations, choose each person's "
     "role and resend invitations that expired.", ("onboarding", "seats"),
     "/help/invite-your-team"),
    ("choose-a-plan", "article", "Which plan is right for you", "Compare Free, Pro and Enterprise: "
     "seats, limits and the features each plan includes.", ("billing",), "/help/choose-a-plan"),
    ("build-your-first-report", "article", "Build your first report", "Choose what to count, group "
     "it by week or owner, and pin the report to your home.", ("reports",),
     "/help/build-your-first-report"),
    ("report-timeouts", "article", "Why a report times out, and how to fix it", "Reports over long "
     "date ranges or many grouped fields can time out while loading: narrow the range, add a "
     "filter or schedule the report instead.", ("reports",), "/help/report-timeouts"),
    ("customize-a-template", "article", "Customize a template", "Add and remove fields, rename "
     "stages and save your version as a new template.", ("templates",),
     "/help/customize-a-template"),
    ("missing-template-fields", "article", "Fix missing fields when applying a template", "A "
     "template can't be applied when required fields are missing from your workspace: map them "
     "to existing fields or create them.", ("templates", "custom_fields"),
     "/help/missing-template-fields"),
    ("automation-triggers", "article", "Choose a trigger for an automation", "Record created, "
     "field changed, date reached or a schedule: which trigger fits which job.", ("automations",),
     "/help/automation-triggers"),
    ("fix-failing-automations", "article", "Fix a failing automation", "Read the run history, find "
     "the failing step, fix a trigger field that was renamed or deleted, and resume an automation "
     "that was paused after repeated failures.", ("automations",), "/help/fix-failing-automations"),
    ("connect-an-integration", "article", "Connect an integration", "Authorize the tool, choose "
     "what to sync and run the first import.", ("integrations",), "/help/connect-an-integration"),
    ("reconnect-expired-integrations", "article", "Reconnect an integration whose access expired",
     "When a sync fails because the connection's access token expired or was revoked, reconnect "
     "it and the sync resumes where it stopped.", ("integrations",),
     "/help/reconnect-expired-integrations"),
    ("api-keys", "article", "Create and rotate API keys", "Create a key per system, rotate it "
     "without downtime, and revoke keys you no longer use.", ("api",), "/help/api-keys"),
    ("api-rate-limits", "article", "API rate limits", "How many requests you can send per minute, "
     "what a 429 response means and how to back off and retry.", ("api",),
     "/help/api-rate-limits"),
    ("custom-fields-basics", "article", "Add custom fields", "Add fields for what your team "
     "tracks, "
     "choose their type and where they show.", ("custom_fields",), "/help/custom-fields-basics"),
    ("duplicate-field-names", "article", "Resolve duplicate field names", "A field can't be saved "
     "when another field already has its name: rename one or merge them.", ("custom_fields",),
     "/help/duplicate-field-names"),
    ("set-up-sso", "article", "Set up single sign-on", "Step-by-step SAML setup for Okta, "
     "Microsoft "
     "Entra ID and Google, and how to test it before enforcing it.", ("sso",), "/help/set-up-sso"),
    ("read-the-audit-log", "article", "Read the audit log", "Find who changed a record, exported "
     "data or changed permissions, and export the log for an audit.", ("audit_log",),
     "/help/read-the-audit-log"),
    ("roles-and-permissions", "article", "Roles and permissions", "Built-in roles, custom roles, "
     "and field-level permissions for sensitive data.", ("advanced_permissions",),
     "/help/roles-and-permissions"),
    # More articles, per feature.
    ("kb_report_scheduling", "article", "Schedule a report by email", "Send a report to your team "
     "every week or month, as a link or a PDF.", ("reports", "automations"),
     "/help/reports/scheduling"),
    ("kb_chart_no_values", "article", "Fix a chart with no data", "A chart can't be built when the "
     "selected field has no values in the report's range: pick another field or widen the "
     "filters.", ("reports",), "/help/reports/empty-charts"),
    ("kb_report_sharing", "article", "Share a report outside your team", "Share a read-only link, "
     "embed a report in another tool or export it to CSV.", ("reports",), "/help/reports/sharing"),
    ("kb_dashboards", "article", "Build a dashboard from several reports", "Pin reports side by "
     "side and filter them all at once.", ("reports",), "/help/reports/dashboards"),
    ("kb_template_gallery", "article", "Find a template for your team", "Browse templates by "
     "industry and use case, preview them and start in one click.", ("templates",),
     "/help/templates/gallery"),
    ("kb_template_sharing", "article", "Share your own templates", "Turn a workspace you built "
     "into a template your colleagues can reuse.", ("templates",), "/help/templates/sharing"),
    ("kb_automation_steps", "article", "Automation steps without an action", "An automation can't "
     "be saved while a step has no action: add one or remove the step.", ("automations",),
     "/help/automations/steps"),
    ("kb_automation_limits", "article", "Automation limits per plan", "How many automations and "
     "runs each plan includes, and what happens at the limit.", ("automations", "billing"),
     "/help/automations/limits"),
    ("kb_automation_conditions", "article", "Conditions and branches in automations", "Run an "
     "action only when a record matches, or branch on a field's value.", ("automations",),
     "/help/automations/conditions"),
    ("kb_integration_rate_limits", "article", "Imports stopped by a provider's rate limit", "When "
     "records can't be imported because the provider's rate limit was reached, the sync retries "
     "on its own; here is how to spread large imports.", ("integrations",),
     "/help/integrations/rate-limits"),
    ("kb_integration_field_mapping", "article", "Map fields between tools", "Choose which fields "
     "sync in which direction and what happens on conflicts.", ("integrations",),
     "/help/integrations/field-mapping"),
    ("kb_integration_disconnect", "article", "Disconnect an integration safely", "What stays and "
     "what is removed when you disconnect a tool.", ("integrations",),
     "/help/integrations/disconnect"),
    ("kb_webhooks", "article", "Receive webhooks", "Subscribe to record events and verify webhook "
     "signatures.", ("api",), "/help/api/webhooks"),
    ("kb_api_errors", "article", "API error codes", "What 400, 401, 403, 404 and 429 responses "
     "mean and how to fix the request; an invalid or revoked key returns 401.", ("api",),
     "/help/api/errors"),
    ("kb_field_formulas", "article", "Formula fields", "Compute a field from others: dates, sums "
     "and conditions.", ("custom_fields",), "/help/fields/formulas"),
    ("kb_required_fields", "article", "Required fields and defaults", "Make a field required or "
     "give it a default value.", ("custom_fields",), "/help/fields/required"),
    ("kb_scim_provisioning", "article", "Provision users with SCIM", "Create and deactivate users "
     "automatically from your identity provider.", ("sso", "advanced_permissions"),
     "/help/security/scim"),
    ("kb_sso_troubleshooting", "article", "Single sign-on errors", "Fix certificate, audience and "
     "clock-skew errors when people can't sign in with SSO.", ("sso",),
     "/help/security/sso-errors"),
    ("kb_audit_export", "article", "Export the audit log", "Stream audit events to your SIEM or "
     "download them for a compliance review.", ("audit_log",), "/help/security/audit-export"),
    ("kb_field_permissions", "article", "Hide sensitive fields", "Restrict who can see or edit a "
     "field, such as salaries or diagnoses.", ("advanced_permissions",),
     "/help/security/field-permissions"),
    ("kb_seat_limits", "article", "Add seats when your plan is full", "What happens when every "
     "seat is taken, and how to add seats or free one up.", ("seats", "billing"),
     "/help/billing/seats"),
    ("kb_billing_invoices", "article", "Invoices and payment methods", "Download invoices, change "
     "the card on file and add a billing contact.", ("billing",), "/help/billing/invoices"),
    ("kb_editor_collaboration", "article", "Edit together in real time", "See who else is editing, "
     "leave comments and resolve conflicts.", ("editor",), "/help/editor/collaboration"),
    ("kb_editor_version_history", "article", "Restore an earlier version", "Browse the version "
     "history of a page and restore what was there before.", ("editor",),
     "/help/editor/versions"),
    ("kb_data_import", "article", "Import data from a spreadsheet", "Upload a CSV or Excel file, "
     "map its columns and fix rows that fail.", ("onboarding",), "/help/data/import"),
    ("kb_notifications", "article", "Choose your notifications", "Pick which events notify you, by "
     "email, in the app or in chat, and set quiet hours.", ("settings",),
     "/help/settings/notifications"),
    # Lessons.
    ("lesson_dashboards", "lesson", "A dashboard your team will open", "Ten minutes to a dashboard "
     "that answers this week's questions.", ("reports",), "/learn/dashboards"),
    ("lesson_templates_tour", "lesson", "Start from a template", "Pick a template for your "
     "industry and make it yours in five minutes.", ("templates",), "/learn/templates"),
    ("lesson_automation_recipes", "lesson", "Five automations every team uses", "Reminders, "
     "hand-offs, approvals, escalations and weekly digests, built step by step.",
     ("automations",), "/learn/automation-recipes"),
    ("lesson_connect_tools", "lesson", "Connect the tools you already use", "Connect chat, "
     "calendar and CRM in one sitting and see their data appear.", ("integrations",),
     "/learn/connect-tools"),
    ("lesson_api_quickstart", "lesson", "API quickstart", "Create a key and make your first three "
     "API calls with curl.", ("api",), "/learn/api-quickstart"),
    ("lesson_custom_fields", "lesson", "Design your fields", "Model what your team tracks with the "
     "right field types.", ("custom_fields",), "/learn/custom-fields"),
    ("lesson_security_basics", "lesson", "Security basics for admins", "Single sign-on, roles and "
     "the audit log: the three settings to review first.", ("sso", "audit_log",
     "advanced_permissions"), "/learn/security-basics"),
    ("lesson_invite_team", "lesson", "Bring your team in", "Invite people, pick their roles and "
     "give them a first thing to do.", ("onboarding",), "/learn/invite-team"),
    ("lesson_editor_tour", "lesson", "A tour of the editor", "Blocks, mentions, comments and "
     "shortcuts in five minutes.", ("editor",), "/learn/editor-tour"),
    ("lesson_reports_advanced", "lesson", "Reports that compare periods", "Compare this month with "
     "last, and show trends instead of totals.", ("reports",), "/learn/reports-compare"),
    ("lesson_approvals", "lesson", "Build an approval flow", "Route requests to the right approver "
     "and record every decision.", ("automations", "advanced_permissions"), "/learn/approvals"),
    ("lesson_data_import", "lesson", "Move your data in", "Import from spreadsheets and other "
     "tools without duplicates.", ("onboarding", "integrations"), "/learn/data-import"),
)
# fmt: on

# --------------------------------------------------------------------------------------------------
# Features: (id, name, description, roles).

# fmt: off
_FEATURES: Final[tuple[tuple[str, str, str, tuple[str, ...]], ...]] = (
    ("reports", "Reports", "Count, group and chart your records, and share a weekly report that "
     "replaces the status meeting.", _ALL_ROLES),
    ("templates", "Templates", "Start from a ready-made workspace built by teams like yours.",
     _BUILDERS),
    ("automations", "Automations", "Let repeated steps run by themselves: reminders, hand-offs, "
     "approvals and updates across tools.", _BUILDERS),
    ("integrations", "Integrations", "Connect the tools your team already uses and keep their data "
     "in sync.", _ADMINS),
    ("api", "API access", "Read and write records from your own systems with a REST API and "
     "webhooks.", _BUILDERS),
    ("custom_fields", "Custom fields", "Track exactly what your team needs with your own fields, "
     "types and validation.", _BUILDERS),
    ("sso", "Single sign-on", "One login for everyone through your identity provider; leavers "
     "lose access the moment IT removes them.", _ADMINS),
    ("audit_log", "Audit log", "A record of who changed what and when, for security reviews and "
     "compliance.", _ADMINS),
    ("advanced_permissions", "Advanced permissions", "Custom roles and field-level access so each "
     "role sees exactly what it needs.", _ADMINS),
    ("editor", "Editor", "Write and organise pages with blocks, mentions, comments and autosave.",
     _ALL_ROLES),
)
# fmt: on

_GATED_INTEGRATIONS: Final = ("integrations",)


def demo_items() -> list[CatalogItem]:
    """Every item of the demo catalog, in a stable order."""
    items: list[CatalogItem] = [
        CatalogItem(
            id=item_id,
            kind="integration",
            title=name,
            description=text,
            href=f"/settings/integrations/{item_id}",
            tags=(*_GATED_INTEGRATIONS, *tags),
            industries=industries,
            roles=_ADMINS,
        )
        for item_id, name, text, industries, tags in _INTEGRATIONS
    ]
    items += [
        CatalogItem(
            id=item_id,
            kind="template",
            title=name,
            description=text,
            href=f"/templates/{item_id}",
            tags=("templates", *tags),
            industries=industries,
            roles=_BUILDERS,
        )
        for item_id, name, text, industries, tags in _TEMPLATES
    ]
    items += [
        CatalogItem(
            id=item_id,
            kind="lesson" if kind == "lesson" else "article",
            title=title,
            description=text,
            href=href,
            tags=tags,
        )
        for item_id, kind, title, text, tags, href in _HELP
    ]
    items += [
        CatalogItem(
            id=item_id,
            kind="feature",
            title=name,
            description=text,
            href=f"/{item_id.replace('_', '-')}",
            tags=(item_id,),
            roles=roles,
        )
        for item_id, name, text, roles in _FEATURES
    ]
    return items


def demo_catalog() -> Catalog:
    return Catalog(demo_items())
