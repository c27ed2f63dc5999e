// Observable Plot's declarations name d3's types; the dashboards use none of them directly.
declare module "d3";
