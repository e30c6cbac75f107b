"""The lives behind the long-conversation dev set: pools to draw from and `live(house)`, which
tells each household's facts across its sessions and asks about them (see build.py)."""

from __future__ import annotations

import datetime as dt

HOUSEHOLDS = [
    {"key": "ines", "people": ("Ines", "Tomas"), "city": "Porto", "start": "2025-09-03"},
    {"key": "kwame", "people": ("Kwame", "Abena"), "city": "Leeds", "start": "2025-10-11"},
    {"key": "sofia", "people": ("Sofia", "Marek"), "city": "Gdansk", "start": "2025-08-20"},
    {"key": "ravi", "people": ("Ravi", "Meera"), "city": "Pune", "start": "2025-11-02"},
    {"key": "hannah", "people": ("Hannah", "Jonas"), "city": "Freiburg", "start": "2025-07-14"},
    {"key": "lucia", "people": ("Lucia", "Diego"), "city": "Valencia", "start": "2025-12-01"},
    {"key": "aiko", "people": ("Aiko", "Kenji"), "city": "Sapporo", "start": "2025-09-25"},
    {"key": "noor", "people": ("Noor", "Sami"), "city": "Amman", "start": "2025-10-28"},
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

SOUL_HELLO = ["Hello! How has your week been?", "Good to hear from you. What's new?", "Hi there. How are things?",
              "Welcome back. How are you both?", "Hello again! Anything on your mind?"]
SOUL_NOD = ["That sounds like a full day.", "How did that make you feel?", "Thanks for telling me.",
            "I'm glad you mentioned it.", "That made me smile.", "Noted.", "I hope tomorrow is kinder.",
            "You've had a lot going on lately.", "Small things like that add up.", "Tell me more when you can.",
            "That's very you.", "Some days are like that.", "I'll remember that.", "Sounds lovely.",
            "Oh, really?", "That must have been something.", "Good for you.", "Fair enough."]
SMALL_TALK = [
    "{other} left the dishes again, but I'm choosing peace tonight.", "It rained all afternoon in {city}.",
    "Work was fine. Nothing to report really.", "I'm so tired I could sleep standing up.",
    "We watched a film last night and both fell asleep halfway.", "The neighbours are having a party again.",
    "{other} says hello, by the way.", "I forgot my umbrella. Again.", "Traffic in {city} was awful today.",
    "Honestly it was a slow, quiet day.", "I made tea and then forgot to drink it.",
    "We should really clean the balcony this weekend.", "My phone is nearly dead, so quickly.",
    "The bus was late but I had a good podcast.", "I keep meaning to call my mum.",
    "It was warmer than expected, so we walked home.", "The fridge is empty and neither of us wants to shop.",
    "{other} is cooking tonight, which means pasta.", "I finished the week's laundry at last.",
    "It was one of those days where everything takes twice as long.", "We went to bed early for once.",
    "I spent the evening answering emails.", "The market in {city} was busy this morning.",
    "Nothing new, just the usual.", "I had a nap after lunch and regret nothing.",
    "It's that one again, you know the one.", "Same as last time, really.", "She said it was fine in the end.",
    "He didn't mind, apparently.", "That's where we went before, isn't it?", "It was bigger than I expected.",
    "We'll see how it goes.", "It was worth it, I think.", "Anyway, it's done now.",
]
GREETINGS = ["Hi, it's {me}.", "Hello! {me} here.", "Evening. It's {me}.", "Hey, {me} again."]

PETS = [("dog", "greyhound"), ("dog", "terrier cross"), ("cat", "grey tabby"), ("cat", "black kitten"),
        ("dog", "old spaniel"), ("rabbit", "lop-eared rabbit"), ("dog", "beagle puppy"), ("cat", "one-eyed ginger cat")]
SHELTERS = ["Riverside", "Hillcrest", "Northgate", "Old Mill", "Saint Clare", "Greenlane", "Harbour View", "Oakfield"]
PET_NAMES = [  # (name, said after the soul asks what they will call it, the question that asks why)
    ("Max", "Max, after my grandfather, who kept a dog of that name on his farm.", "Why does our {species} carry that name?"),
    ("Pepper", "Pepper. The black speckles on the nose made it obvious.", "What gave our {species} its name?"),
    ("Orbit", "Orbit, because he runs circles around the sofa every single evening.", "How did our {species} come to be called that?"),
    ("Mochi", "Mochi, since she's soft and round and white like the sweets.", "Why that name for the {species}?"),
    ("Captain", "Captain. He sits at the window watching the street as if he's steering a ship.", "Where does our {species}'s name come from?"),
    ("Fig", "Fig, because she arrived the day our neighbour's tree fruited.", "What's the story behind our {species}'s name?"),
    ("Bruno", "Bruno, for the footballer my father loved when he was young.", "Why is the {species} called what it's called?"),
    ("Juniper", "Juniper, after the bush by the gate where we first met her.", "What inspired what we call the {species}?"),
]
TRIPS = [  # (place, what was eaten, a detail, a question for the detail sharing no word with it)
    ("Lisbon", "grilled sardines", "the tram up the hill was packed with tourists", "Where was the crowded ride up the slope?"),
    ("Seville", "salmorejo", "the orange trees were in blossom in every square", "Which trip had citrus flowering everywhere?"),
    ("Edinburgh", "haggis with whisky sauce", "it was so windy on the castle rock we could barely stand", "Where did a gale nearly knock us over?"),
    ("Kyoto", "cold soba", "we got up at five to see the shrine gates empty", "Which holiday had the very early start for a deserted landmark?"),
    ("Naples", "pizza fritta", "a scooter nearly took my bag in the old town", "Where was I almost robbed?"),
    ("Bergen", "fish soup", "it drizzled for three days straight and we didn't care", "Which trip had nonstop rain that we ignored?"),
    ("Marrakesh", "lamb tagine", "we got lost in the souks for two hours", "Where did we wander without finding our way for ages?"),
    ("Vienna", "apple strudel", "the opera standing tickets cost less than a coffee", "Which city had cheap music tickets for people on their feet?"),
    ("Istanbul", "simit from a street cart", "the ferry across the Bosphorus at sunset was the highlight", "Where was the best moment a boat crossing at dusk?"),
    ("Krakow", "pierogi", "the salt mine tour went deeper than I thought possible", "Which trip took us far underground?"),
    ("Copenhagen", "smorrebrod", "we rented bikes and rode everywhere, even in the rain", "Where did we get around on two wheels?"),
    ("Athens", "souvlaki", "the Acropolis was closed for a strike the first day", "Which holiday had a monument shut by industrial action?"),
]
BOOKS = [  # (title, author, an opinion, a question on the opinion sharing no content word)
    ("The Salt Orchard", "Mira Ellison", "the ending made me cry on the train", "Which novel had a finale that brought tears in public?"),
    ("Nine Bridges", "Tobias Vane", "far too long, I skimmed the last hundred pages", "Which read dragged so much it got rushed through?"),
    ("A Map of Small Hours", "Dana Okafor", "I underlined half of it", "Which book got marked up all over?"),
    ("The Glass Cartographer", "Ilse Brandt", "the middle was slow but the last chapter was brilliant", "Which story only came alive near its close?"),
    ("Winter Ledger", "Paulo Reyes", "I guessed the murderer by chapter three", "Which mystery was solved too early by the reader?"),
    ("Harbour of Echoes", "Yuki Tanabe", "it's the best thing I've read in years", "What was the favourite read of recent times?"),
    ("The Quiet Engine", "Lars Holm", "I gave up twice before I finished it", "Which book needed several attempts to complete?"),
    ("Letters to the Lighthouse", "Fiona Adair", "it was lovely but a bit too sweet", "Which book was charming yet sugary?"),
    ("Red Clay Summer", "Emeka Nwosu", "I read it in one sitting", "Which book was devoured without a break?"),
]
SIBLINGS = [("brother", "Paulo"), ("sister", "Lena"), ("brother", "Femi"), ("sister", "Agata"), ("brother", "Arjun"),
            ("sister", "Clara"), ("brother", "Haruto"), ("sister", "Dalia")]
MOVES = [("Lyon", "to be closer to his partner"), ("Montreal", "for a research post"), ("Rotterdam", "because the rent is half"),
         ("Melbourne", "on a two-year visa"), ("Tallinn", "for a startup"), ("Dublin", "to finish a master's degree"),
         ("Bologna", "after falling for the city on holiday"), ("Nairobi", "to work with an aid agency")]
SIB_JOBS = ["pastry chef", "paramedic", "architect", "court interpreter", "marine biologist", "tram driver",
            "piano tuner", "data journalist"]
HOBBIES = [  # domain → per person (what they do, a detail)
    ("painting", [("watercolours of the old harbour", "paints"), ("oil portraits of strangers on the metro", "paints"),
                  ("tiny ink sketches of doorways", "draws")]),
    ("music", [("the ukulele", "is learning"), ("jazz drums", "is learning"), ("the cello", "is learning"),
               ("the accordion", "is learning")]),
    ("sport", [("bouldering at the indoor wall", "does"), ("rowing on the river at dawn", "does"),
               ("five-a-side football on Wednesdays", "plays"), ("Sunday open-water swimming", "does")]),
    ("making", [("pottery on a secondhand wheel", "makes"), ("sourdough with a starter called Gerald", "bakes"),
                ("wooden spoons from fallen branches", "carves"), ("patchwork quilts from old shirts", "sews")]),
]
ALLERGIES = [("peanuts", "satay"), ("shellfish", "the prawn curry"), ("sesame", "hummus"), ("kiwi", "fruit salad"),
             ("gluten", "fresh bread"), ("eggs", "omelettes"), ("mustard", "the honey-mustard dressing"), ("celery", "soup from the deli")]
COMPANIES = [("Fernway", "flood maps for insurers"), ("Brightloom", "software for textile mills"),
             ("Quayline", "scheduling tools for ferries"), ("Solenne", "solar panels for schools"),
             ("Tessellate", "puzzles and board games"), ("Arborlight", "sensors that measure tree health"),
             ("Pellucid", "water filters for camping"), ("Marrow", "hospital logistics software")]
MANAGERS = ["Oluwaseun", "Birgit", "Rafael", "Siobhan", "Tariq", "Mei", "Gustavo", "Annika"]
JOBS = ["product designer", "data engineer", "operations lead", "copywriter", "support manager", "analyst"]
PURCHASES = [("bicycle", "a green cargo bike with a wooden box on the front", "What colour is the bike we bought?"),
             ("sofa", "a mustard velvet sofa that barely fit through the door", "What shade is the couch we got?"),
             ("car", "a secondhand blue hatchback with a cracked mirror", "What's wrong with the car we bought?"),
             ("piano", "an upright piano from a church sale for almost nothing", "Where did the piano we bought come from?"),
             ("tent", "a three-person tent that packs down to the size of a loaf", "How small does our new tent fold?"),
             ("coffee machine", "an espresso machine that hisses like a kettle", "Which appliance makes the snake noise?"),
             ("bookcase", "a tall oak bookcase from an antique shop", "What wood is the bookcase we bought made of?")]
ROUTES = ["the river path", "the canal towpath", "the seafront", "the ring road park", "the old railway line"]
FRIENDS = ["Beatriz", "Olek", "Yara", "Malik", "Greta", "Chidi", "Saanvi", "Emil", "Rosa", "Idris", "Nadia", "Theo"]
RESTAURANTS = ["the Lantern", "Casa Verde", "the Copper Pot", "Blue Fig", "the Old Station", "Mirador"]
BANDS = [("The Paper Lanterns", "the town hall"), ("Kestrel Sound", "the old brewery"),
         ("Mono Atlas", "a tiny basement club"), ("Hollow Pines", "the open-air theatre"),
         ("Saltwater Choir", "the cathedral"), ("Velvet Transit", "the student union")]
DISHES = ["a lentil dal with too much ginger", "a fennel and orange risotto", "a pumpkin soup with chilli oil",
          "dumplings folded by hand", "a slow-cooked bean stew", "a tray of roasted aubergines with yoghurt",
          "a lemon tart from my aunt's recipe", "spiced flatbreads on the cast-iron pan"]
APPLIANCES = [("washing machine", "Mr Duarte"), ("boiler", "the letting agency"), ("oven door", "our landlady, Mrs Kerr"),
              ("shower pump", "the housing office")]


def greeting(rng, me: str) -> str:
    return rng.choice(GREETINGS).format(me=me)


def small_talk(rng, house, speaker: str) -> str:
    other = house.b if speaker == house.a else house.a
    return rng.choice(SMALL_TALK).format(other=other, city=house.city)


def day_words(rng, day: dt.date) -> str:
    """A date as questions say it, in one of several forms."""
    month = MONTHS[day.month - 1]
    return rng.choice([f"on {day.day} {month}", f"on {month} {day.day}", f"on the {ordinal(day.day)} of {month}"])


def article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def ordinal(n: int) -> str:
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def past(rng, day: dt.date) -> tuple[str, dt.date]:
    """A way to say a recent past day, and the day it means."""
    choice = rng.randrange(4)
    if choice == 0:
        return "yesterday", day - dt.timedelta(days=1)
    if choice == 1:
        return "two days ago", day - dt.timedelta(days=2)
    back = (day.weekday() - 6) % 7 or 7  # the last Sunday before today
    if choice == 2:
        return "on Sunday", day - dt.timedelta(days=back)
    saturday = day - dt.timedelta(days=(day.weekday() - 5) % 7 or 7)
    return "last Saturday", saturday


def ahead(rng, day: dt.date) -> tuple[str, dt.date]:
    """A way to say a coming day, and the day it means."""
    choice = rng.randrange(3)
    if choice == 0:
        return "tomorrow", day + dt.timedelta(days=1)
    if choice == 1:
        weekday = rng.choice((4, 5))  # Friday or Saturday, the first after today
        later = day + dt.timedelta(days=(weekday - day.weekday()) % 7 or 7)
        return f"on {WEEKDAYS[weekday]}", later
    later = day + dt.timedelta(days=rng.randint(3, 12))
    return f"on the {ordinal(later.day)}", later


def live(h) -> None:
    """Every fact this household tells, in which session, and the questions about it."""
    rng, a, b = h.rng, h.a, h.b
    who = lambda: rng.choice((a, b))  # noqa: E731
    months_of: dict[str, list[int]] = {}  # a kind of fact → the months it happened in

    # the pet: adopted, then named when the soul asks
    species, breed = h.pick("pet", PETS)
    shelter = h.pick("shelter", SHELTERS)
    name, named, why = h.pick("pet-name", PET_NAMES)
    s = rng.randint(1, 3)
    adopter = who()
    k1 = h.say(s, adopter, rng.choice([
        f"We adopted a {breed} from the {shelter} rescue today. The flat already smells of {species}.",
        f"Big news: there's a {species} living with us now, a {breed} from the {shelter} shelter.",
        f"We finally did it, we brought home a {species} from {shelter}. A {breed}, two years old."]),
        reply=f"Welcome to the family! What will you call {'him' if species == 'dog' else 'her'}?")
    k2 = h.say(s, adopter, named)
    h.ask("single-hop", f"Which shelter did we adopt our {species} from?", k1)
    h.ask("paraphrase", why.format(species=species), k2)
    h.ask("single-hop", f"What breed is {name}?", k1, k2)
    vet_s = rng.randint(s + 2, 8)
    vet_when, vet_day = past(rng, h.day(vet_s))
    k = h.say(vet_s, who(), f"{name} had the vet {vet_when}: a bad tooth, it came out, and now "
                            f"{'he' if species == 'dog' else 'she'} is sulking under the bed.",
              follow="It cost more than we expected.")
    h.ask("temporal", f"What happened to {name} {day_words(rng, vet_day)}?", k)
    h.ask("paraphrase", rng.choice(["Did our pet need any treatment for a problem in the mouth?",
                                    "Which animal lost a tooth at the clinic?"]), k)
    h.ask("multi-hop", f"Which rescue did the {species} who lost a tooth come from?", k1, k)

    # trips: four, one in each quarter of the sessions
    for i, s in enumerate((rng.randint(2, 3), rng.randint(4, 6), rng.randint(7, 9), rng.randint(10, 12))):
        place, food, detail, paraphrase = h.pick("trip", TRIPS)
        when, day = past(rng, h.day(s))
        k = h.say(s, who(), rng.choice([
            f"We got back from {place} {when}. We ate {food} every day and {detail}.",
            f"Home from {place} {when}! Highlights: {food}, and {detail}.",
            f"{place} was wonderful. We flew home {when}; {detail}, and I still dream about the {food}."]),
            follow=rng.choice(["We want to go back.", "It was exhausting, though.", "Never again in August."]))
        months_of.setdefault("trip", []).append(day.month)
        h.ask("single-hop", f"Where did we eat {food}?", k)
        h.ask("paraphrase", paraphrase, k)
        h.ask("temporal", f"Where did we travel {rng.choice(['in', 'during'])} {MONTHS[day.month - 1]}?"
              if months_of["trip"].count(day.month) == 1 else f"Which city did we come home from {day_words(rng, day)}?", k)

    # books: three, one person each
    for s in rng.sample(range(1, 13), 3):
        title, author, opinion, paraphrase = h.pick("book", BOOKS)
        reader = who()
        when, day = past(rng, h.day(s))
        k = h.say(s, reader, rng.choice([
            f"I finished {title} by {author} {when}. Honestly, {opinion}.",
            f"Done with {title} {when}, the {author} one. {opinion.capitalize()}."]))
        h.ask("single-hop", f"Who wrote {title}?", k)
        h.ask("paraphrase", paraphrase, k)
        h.ask("temporal", f"Which book did {reader} finish {day_words(rng, day)}?", k)

    # a sibling moves, and later says what the work there is
    kin, sib = h.pick("sibling", SIBLINGS)
    where, because = h.pick("move", MOVES)
    job = h.pick("sib-job", SIB_JOBS)
    teller = who()
    s1 = rng.randint(1, 5)
    s2 = rng.randint(s1 + 3, 12)
    k1 = h.say(s1, teller, f"My {kin} {sib} is moving to {where} {because}.",
               reply=f"That's a big change for {sib}. How do you feel about it?",
               follow="I'll miss having them nearby.")
    k2 = h.say(s2, teller, f"{sib} called: the new job is going well, {'he' if kin == 'brother' else 'she'} "
                           f"is {article(job)} now and loves it.")
    h.ask("single-hop", f"Where did {sib} move to?", k1)
    h.ask("multi-hop", f"What does {teller}'s {kin} in {where} do for a living?", k1, k2)
    h.ask("paraphrase", f"Why did {teller}'s sibling relocate abroad?", k1)
    h.ask("adversarial", f"What does {teller}'s {'sister' if kin == 'brother' else 'brother'} do for a living?")

    # hobbies: both people in one field, each their own thing (a named speaker decides)
    field, options = h.pick("hobby", HOBBIES)
    mine, theirs = rng.sample(options, 2)
    hobby_of = {}
    for person, (thing, verb) in ((a, mine), (b, theirs)):
        s = rng.randint(1, 12)
        k = hobby_of[person] = h.say(s, person, rng.choice([f"I've started {thing}. It's the best part of my week.",
                                         f"Lately I spend every spare hour on {thing}.",
                                         f"Guess what I've taken up: {thing}."]),
                  follow="It's harder than it looks.")
        h.ask("single-hop", f"What {'instrument' if field == 'music' else field} has {person} taken up?", k)
        h.ask("paraphrase", f"How does {person} like to spend free time?", k)

    # a health fact, asked without its words
    allergen, dish = h.pick("allergy", ALLERGIES)
    patient = who()
    s = rng.randint(2, 11)
    k = h.say(s, patient, f"The allergy test came back: it's {allergen}. So no more {dish} for me.",
              reply="I'll remember that. Is it serious?", follow="The doctor says it's manageable.")
    h.ask("paraphrase", f"What must never go into {patient}'s dinner?", k)
    h.ask("single-hop", f"What is {patient} allergic to?", k)

    # a new job: the offer, and later what the company does
    company, makes = h.pick("company", COMPANIES)
    manager = h.pick("manager", MANAGERS)
    role = h.pick("job", JOBS)
    worker = who()
    s1 = rng.randint(2, 7)
    s2 = rng.randint(s1 + 2, 12)
    k1 = h.say(s1, worker, f"I got the job at {company}! {role.capitalize()}, and my manager will be {manager}.",
               reply="Congratulations! When do you start?")
    k2 = h.say(s2, worker, rng.choice([f"Work is good. We make {makes}, and I finally understand the whole thing.",
                                       f"People ask what my company does: {makes}. It's more interesting than it sounds."]))
    h.ask("single-hop", f"Who is {worker}'s manager at {company}?", k1)
    h.ask("multi-hop", f"What does the company where {worker} became {article(role)} make?", k1, k2)
    offer_month = MONTHS[h.day(s1).month - 1]
    h.ask("temporal", f"Which job offer did {worker} accept in {offer_month}?", k1)

    # purchases
    for s in rng.sample(range(2, 13), 2):
        thing, described, question = h.pick("purchase", PURCHASES)
        when, day = past(rng, h.day(s))
        k = h.say(s, who(), rng.choice([f"We bought {described} {when}.",
                                        f"New in the flat, {when}: {described}."]))
        h.ask("paraphrase" if rng.random() < 0.5 else "single-hop", question, k)
        h.ask("temporal", f"What did we buy {day_words(rng, day)}?", k)

    # runs: the same shape twice, the day tells them apart
    runner = who()
    for s in rng.sample(range(1, 13), 2):
        when, day = past(rng, h.day(s))
        km = rng.randint(5, 21)
        k = h.say(s, runner, f"{when[0].upper() + when[1:]} I ran {km} km along {rng.choice(ROUTES)}. My legs are jelly.")
        h.ask("temporal", f"How far did {runner} run {day_words(rng, day)}?", k)

    # plans for a named day, asked by the date it falls on
    for s in rng.sample(range(1, 12), 2):
        friend = h.pick("friend", FRIENDS)
        place = rng.choice(RESTAURANTS)
        when, day = ahead(rng, h.day(s))
        k = h.say(s, who(), rng.choice([f"We're having dinner with {friend} at {place} {when}.",
                                        f"{when[0].upper() + when[1:]} we're meeting {friend} at {place}, finally."]))
        h.ask("temporal", f"Who were we seeing {day_words(rng, day)}?", k)

    # a concert
    band, venue = h.pick("band", BANDS)
    s = rng.randint(1, 12)
    when, day = past(rng, h.day(s))
    k = h.say(s, who(), f"We saw {band} at {venue} {when}. My ears are still ringing.")
    h.ask("single-hop", f"Which band did we see at {venue}?", k)
    h.ask("temporal", f"What did we do in the evening {day_words(rng, day)}?", k)

    # cooking, one dish each: a named speaker decides
    for person in (a, b):
        dish = h.pick("dish", DISHES)
        s = rng.randint(1, 12)
        k = h.say(s, person, f"I cooked {dish} tonight. {rng.choice(['Nailed it.', 'Not my best.', 'We ate it all.'])}")
        h.ask("single-hop", f"What did {person} cook?", k)
        h.ask("multi-hop", f"The one of us who cooked {dish.split(' with ')[0]}: what hobby did they take up?",
              k, hobby_of[person])

    # something breaks; who is to fix it, asked around its words
    appliance, fixer = h.pick("appliance", APPLIANCES)
    s = rng.randint(1, 12)
    k = h.say(s, who(), f"The {appliance} broke again and {fixer} says someone will come next week.",
              follow="That's what they said last time.")
    h.ask("paraphrase", "Who is supposed to sort out repairs where we live?", k)

    # a wedding on a stated date
    friend = h.pick("friend", FRIENDS)
    s = rng.randint(1, 10)
    wedding = h.day(s) + dt.timedelta(days=rng.randint(20, 60))
    k = h.say(s, who(), f"{friend} is getting married on the {ordinal(wedding.day)} of {MONTHS[wedding.month - 1]}, "
                        f"and we're invited!")
    h.ask("single-hop", f"When is {friend}'s wedding?", k)
    h.ask("temporal", f"Whose wedding is {day_words(rng, wedding)}?", k)

    # never said
    unused_trip = h.pick("trip", TRIPS)[0]
    unused_book = h.pick("book", BOOKS)
    other_species = "cat" if species == "dog" else "dog"
    h.ask("adversarial", f"What did we eat in {unused_trip}?")
    h.ask("adversarial", f"What did {who()} think of {unused_book[0]}?")
    h.ask("adversarial", f"What is the name of our {other_species}?")
    h.ask("adversarial", f"Which band did we see at {h.pick('band', BANDS)[1]}?")
