// A sample sentence per language, picked by the language code's prefix
// (en_US -> en), and readable names of language codes.

const SAMPLES = {
  ar: "مرحبا، هذا هو صوتي. أتمنى لك يوما سعيدا.",
  ca: "Hola, aquesta és la meva veu. Que tinguis un bon dia.",
  cs: "Dobrý den, takhle zní můj hlas. Přeji vám hezký den.",
  cy: "Helo, dyma sut mae fy llais yn swnio. Cael diwrnod braf.",
  da: "Hej, sådan lyder min stemme. Hav en god dag.",
  de: "Hallo, so klingt meine Stimme. Ich wünsche dir einen schönen Tag.",
  el: "Γεια σας, έτσι ακούγεται η φωνή μου. Καλή σας μέρα.",
  en: "Hello, this is how my voice sounds. Have a wonderful day.",
  es: "Hola, así suena mi voz. Que tengas un buen día.",
  fa: "سلام، صدای من این گونه است. روز خوبی داشته باشید.",
  fi: "Hei, tältä minun ääneni kuulostaa. Mukavaa päivää.",
  fr: "Bonjour, voici comment sonne ma voix. Passez une excellente journée.",
  hi: "नमस्ते, मेरी आवाज़ ऐसी सुनाई देती है। आपका दिन शुभ हो।",
  hu: "Szia, így szól a hangom. Legyen szép napod.",
  is: "Halló, svona hljómar röddin mín. Eigðu góðan dag.",
  it: "Ciao, questa è la mia voce. Ti auguro una buona giornata.",
  ja: "こんにちは、これが私の声です。よい一日をお過ごしください。",
  ka: "გამარჯობა, ასე ჟღერს ჩემი ხმა. კარგ დღეს გისურვებთ.",
  kk: "Сәлеметсіз бе, менің дауысым осылай естіледі. Күніңіз сәтті өтсін.",
  ko: "안녕하세요, 제 목소리는 이렇게 들립니다. 좋은 하루 보내세요.",
  lb: "Moien, sou kléngt meng Stëmm. E schéinen Dag nach.",
  lv: "Sveiki, tā skan mana balss. Jauku dienu!",
  ml: "നമസ്കാരം, എന്റെ ശബ്ദം ഇങ്ങനെയാണ്. നല്ലൊരു ദിവസം ആശംസിക്കുന്നു.",
  ne: "नमस्ते, मेरो आवाज यस्तो सुनिन्छ। तपाईंको दिन शुभ रहोस्।",
  nl: "Hallo, zo klinkt mijn stem. Nog een fijne dag.",
  no: "Hei, slik høres stemmen min ut. Ha en fin dag.",
  nb: "Hei, slik høres stemmen min ut. Ha en fin dag.",
  pl: "Cześć, tak brzmi mój głos. Miłego dnia.",
  pt: "Olá, esta é a minha voz. Tenha um ótimo dia.",
  ro: "Bună, așa sună vocea mea. O zi frumoasă.",
  ru: "Здравствуйте, так звучит мой голос. Хорошего вам дня.",
  sk: "Dobrý deň, takto znie môj hlas. Prajem vám pekný deň.",
  sl: "Živjo, tako zveni moj glas. Lep dan vam želim.",
  sr: "Здраво, овако звучи мој глас. Пријатан дан.",
  sv: "Hej, så här låter min röst. Ha en fin dag.",
  sw: "Habari, hivi ndivyo sauti yangu inavyosikika. Uwe na siku njema.",
  tr: "Merhaba, sesim böyle duyuluyor. İyi günler dilerim.",
  uk: "Привіт, так звучить мій голос. Гарного вам дня.",
  vi: "Xin chào, đây là giọng nói của tôi. Chúc bạn một ngày tốt lành.",
  zh: "你好，这就是我的声音。祝你今天愉快。",
};

/** The language of a code such as en_US, de or zh_CN: its part before the region. */
export function languagePrefix(code) {
  return (code || "").split(/[_-]/)[0].toLowerCase();
}

/** A short sentence in the language of `code`; English when none is known. */
export function sampleSentence(code) {
  return SAMPLES[languagePrefix(code)] || SAMPLES.en;
}

const NAMES = typeof Intl.DisplayNames === "function"
  ? new Intl.DisplayNames(["en"], { type: "language" })
  : null;

/** "American English (en_US)" for en_US; the code alone when the browser has no name. */
export function languageName(code) {
  if (!code) return "No language given";
  try {
    const name = NAMES?.of(code.replace("_", "-"));
    if (name && name !== code) return `${name} (${code})`;
  } catch {
    // not a code the browser knows
  }
  return code;
}
