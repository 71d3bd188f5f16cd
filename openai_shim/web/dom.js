// Building elements without innerHTML: names and descriptions from the server
// are always text, never markup.

/** An element with attributes (`class`, `data-*`, `aria-*`, properties for the rest) and children. */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class" || name.startsWith("data-") || name.startsWith("aria-") || name === "for") {
      element.setAttribute(name, value === true ? "" : value);
    } else {
      element[name] = value;
    }
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return element;
}

/** A page-unique id for labels. */
let counter = 0;
export function uniqueId(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}
